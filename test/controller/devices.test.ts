import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { MiB, startFixture } from './util'

const MAGIC = 'VSTORLBL\n'

function head(p: string, n = 4096): Buffer {
  const fd = fs.openSync(p, 'r')
  try {
    const b = Buffer.alloc(n)
    fs.readSync(fd, b, 0, n, 0)
    return b
  } finally {
    fs.closeSync(fd)
  }
}

test('device add writes a label at offset 0, lists capacity in whole units, remove wipes it', async (t) => {
  const f = await startFixture(t)
  const p = f.file('a.img', 64 * MiB + 12345)
  const d = await f.call('device.add', { path: p })
  assert.equal(d.name, 'dev0')
  assert.equal(d.path, p)
  assert.equal(d.kind, 'file')
  assert.equal(d.size, 64 * MiB + 12345)
  assert.equal(d.dataStart, MiB)
  assert.equal(d.capacity, 63 * MiB)
  assert.equal(d.free, 63 * MiB)
  assert.equal(d.used, 0)
  assert.equal(d.health, 'ok')
  const h = head(p)
  assert.equal(h.toString('latin1', 0, MAGIC.length), MAGIC)
  const label = JSON.parse(h.toString('utf8', MAGIC.length, h.indexOf(0, MAGIC.length)))
  assert.equal(label.uuid, d.uuid)
  assert.equal(label.name, 'dev0')
  assert.equal(label.version, 1)

  const d1 = await f.call('device.add', { path: f.file('b.img', 8 * MiB), name: 'fast-1' })
  assert.equal(d1.name, 'fast-1')
  const d2 = await f.call('device.add', { path: f.file('c.img', 8 * MiB) })
  assert.equal(d2.name, 'dev1')
  assert.deepEqual(
    (await f.call('device.list', {})).map((x) => x.name),
    ['dev0', 'fast-1', 'dev1'],
  )

  const removed = await f.call('device.remove', { name: 'dev0' })
  assert.equal(removed.uuid, d.uuid)
  assert.ok(head(p).equals(Buffer.alloc(4096)), 'label wiped')
  assert.deepEqual(
    (await f.call('device.list', {})).map((x) => x.name),
    ['fast-1', 'dev1'],
  )
  // wiped: it can be added again
  assert.equal((await f.call('device.add', { path: p })).name, 'dev0')
})

test('device add refuses bad paths, small, labelled, duplicate and bad names without changing anything', async (t) => {
  const f = await startFixture(t)
  const ok = f.file('ok.img', 16 * MiB)
  await f.call('device.add', { path: ok, name: 'one' })
  assert.equal(await f.failCode('device.add', { path: path.join(f.dir, 'missing.img') }), 'DEVICE_INVALID')
  assert.equal(await f.failCode('device.add', { path: f.dir }), 'DEVICE_INVALID')
  assert.equal(await f.failCode('device.add', { path: '/dev/null' }), 'DEVICE_INVALID')
  assert.equal(await f.failCode('device.add', { path: f.file('small.img', 2 * MiB - 1) }), 'DEVICE_TOO_SMALL')
  assert.equal(await f.failCode('device.add', { path: ok }), 'EXISTS')
  assert.equal(await f.failCode('device.add', { path: f.file('n.img', 16 * MiB), name: 'one' }), 'EXISTS')
  assert.equal(await f.failCode('device.add', { path: f.file('m.img', 16 * MiB), name: '-bad' }), 'BAD_NAME')
  // a label from elsewhere (copied device)
  const copy = path.join(f.dir, 'copy.img')
  fs.copyFileSync(ok, copy)
  assert.equal(await f.failCode('device.add', { path: copy }), 'DEVICE_LABELLED')
  assert.equal(
    head(path.join(f.dir, 'n.img')).every((b) => b === 0),
    true,
    'no label written on a refused add',
  )
  assert.deepEqual(
    (await f.call('device.list', {})).map((x) => x.name),
    ['one'],
  )
  assert.equal(await f.failCode('device.remove', { name: 'nope' }), 'NOT_FOUND')
})

test('device remove is refused while a disk uses the device', async (t) => {
  const f = await startFixture(t)
  await f.call('device.add', { path: f.file('a.img', 16 * MiB) })
  await f.call('disk.create', { name: 'vm1', size: 4 * MiB })
  assert.equal(await f.failCode('device.remove', { name: 'dev0' }), 'DEVICE_BUSY')
  assert.equal((await f.call('device.list', {})).length, 1)
  await f.call('disk.delete', { name: 'vm1' })
  await f.call('device.remove', { name: 'dev0' })
})

test('block devices: size from sysfs, in-use (mounted) refused', { skip: process.getuid?.() !== 0 && !process.env.CI }, async (t) => {
  const f = await startFixture(t)
  const loops: string[] = []
  const mnt = path.join(f.dir, 'mnt')
  f.onCleanup(() => {
    try {
      execFileSync('umount', [mnt], { stdio: 'ignore' })
    } catch {
      // not mounted
    }
    for (const l of loops) execFileSync('losetup', ['-d', l])
  })
  const attach = (file: string) => {
    const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim()
    loops.push(dev)
    return dev
  }
  const l1 = attach(f.file('blk.img', 32 * MiB))
  const d = await f.call('device.add', { path: l1 })
  assert.equal(d.kind, 'block')
  assert.equal(d.size, 32 * MiB)
  assert.equal(d.capacity, 31 * MiB)
  assert.equal(head(path.join(f.dir, 'blk.img')).toString('latin1', 0, MAGIC.length), MAGIC)

  const busyFile = f.file('busy.img', 32 * MiB)
  execFileSync('mkfs.ext4', ['-q', '-F', busyFile])
  const l2 = attach(busyFile)
  fs.mkdirSync(mnt)
  execFileSync('mount', [l2, mnt])
  assert.equal(await f.failCode('device.add', { path: l2 }), 'DEVICE_IN_USE')
  await f.call('device.remove', { name: d.name })
})
