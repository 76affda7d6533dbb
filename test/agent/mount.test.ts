// Real FUSE: an agent process mounts over two sparse files, fed by a fake controller.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fuse3Available } from '../../src/agent/frontend/fuse3'
import { pidFilePath, unmountAgent } from '../../src/agent/index'
import { isMounted } from '../../src/agent/mounts'
import { MiB } from '../../src/size'
import { Flag, NO_DEVICE } from '../../src/table/table'
import { canMount, exists, ext, setup, sh, waitFor } from './mountkit'

test('mount: images, mapped I/O across devices, size, limits, disk add/remove, unmount', async (t) => {
  if (!canMount(t)) return
  const s = await setup(t)
  await s.startAgent()
  assert.deepEqual(await fs.promises.readdir(s.mnt), ['d.img'])
  assert.equal((await fs.promises.stat(s.img)).size, 4 * MiB)

  // qemu-io writes a pattern across the device boundary at 2M and reads it back.
  const q = await sh('qemu-io', [
    '-f',
    'raw',
    '-c',
    'write -P 0x5a 2040k 16k',
    '-c',
    'read -P 0x5a 2040k 16k',
    '-c',
    'write -P 0x33 0 4k',
    s.img,
  ])
  assert.equal(q.code, 0, q.out)
  assert.doesNotMatch(q.out, /fail|error|mismatch/i)
  const b1 = (await fs.promises.readFile(s.dev1)).subarray(MiB + 2040 * 1024, MiB + 2048 * 1024)
  const b2 = (await fs.promises.readFile(s.dev2)).subarray(MiB, MiB + 8192)
  assert.ok(b1.every((b) => b === 0x5a) && b2.every((b) => b === 0x5a), 'bytes land at pstart on each device')
  assert.ok((await fs.promises.readFile(s.dev1)).subarray(MiB, MiB + 4096).every((b) => b === 0x33))

  // Writes past the end fail with ENOSPC; a truncate to another size is refused.
  const fh = await fs.promises.open(s.img, 'r+')
  await assert.rejects(fh.write(Buffer.alloc(512, 1), 0, 512, 4 * MiB), { code: 'ENOSPC' })
  await fh.close()
  await assert.rejects(fs.promises.truncate(s.img, MiB), { code: 'EPERM' })
  await assert.rejects(fs.promises.writeFile(path.join(s.mnt, 'x'), 'x'), { code: 'EPERM' })

  // Invalid through FUSE: EIO and an unmapped fault reaches the controller.
  await s.ctl.update('d', 3 * MiB, 4 * MiB, [ext(3 * MiB, MiB, NO_DEVICE, 0, Flag.Invalid)])
  const r = await sh('qemu-io', ['-f', 'raw', '-c', 'read 3M 4k', s.img])
  assert.match(r.out, /Input\/output error/)
  await waitFor('the unmapped fault', async () => s.ctl.faults.some((f) => f.kind === 'unmapped' && f.offset === 3 * MiB))

  // Disks pushed by the controller appear and disappear.
  await s.ctl.addDisk({ name: 'e', size: MiB, extents: [ext(0, MiB, 1, 4 * MiB)] })
  assert.deepEqual((await fs.promises.readdir(s.mnt)).sort(), ['d.img', 'e.img'])
  assert.equal((await fs.promises.stat(path.join(s.mnt, 'e.img'))).size, MiB)
  await s.ctl.removeDisk('e')
  assert.deepEqual(await fs.promises.readdir(s.mnt), ['d.img'])
  await assert.rejects(fs.promises.stat(path.join(s.mnt, 'e.img')), { code: 'ENOENT' })

  await unmountAgent(s.mnt, s.socket)
  assert.equal(await isMounted(s.mnt), false)
  assert.equal(await exists(pidFilePath(s.mnt, s.socket)), false)
  await assert.rejects(unmountAgent(s.mnt, s.socket), { code: 'NOT_MOUNTED' })
})

test('mount: a first write into a zero unit faults, is retried once the (lazy) mapping is applied, and lands; fsync asks for a barrier', async (t) => {
  if (!canMount(t)) return
  const s = await setup(t)
  s.ctl.disks = [{ name: 'd', size: 4 * MiB, extents: [ext(0, 4 * MiB, NO_DEVICE, 0, Flag.Zero)] }]
  const fd = await fs.promises.open(s.dev2, 'r+')
  await fd.write(Buffer.alloc(7 * MiB, 0xaa), 0, 7 * MiB, MiB) // stale bytes after the label
  await fd.close()
  s.ctl.onFault = async (f) => {
    if (f.kind !== 'unallocated') return { action: 'deny' }
    // as the controller does: the unit reads zeros before anyone maps it
    const h = await fs.promises.open(s.dev2, 'r+')
    await h.write(Buffer.alloc(f.length), 0, f.length, 2 * MiB)
    await h.close()
    await s.ctl.update('d', f.offset, f.offset + f.length, [ext(f.offset, f.length, 2, 2 * MiB)], true)
    return { action: 'retry' }
  }
  await s.startAgent()
  const q = await sh('qemu-io', [
    '-f',
    'raw',
    '-c',
    'read -P 0 0 4M',
    '-c',
    'write -P 0x77 1028k 4k',
    '-c',
    'read -P 0 1M 4k',
    '-c',
    'read -P 0x77 1028k 4k',
    '-c',
    'read -P 0 1032k 1016k',
    s.img,
  ])
  assert.equal(q.code, 0, q.out)
  assert.ok(s.ctl.metaSyncs >= 1, "qemu-io's flush after the allocating write asked for a metadata barrier")
  assert.doesNotMatch(q.out, /fail|error|mismatch/i)
  assert.deepEqual(
    s.ctl.faults.map((f) => [f.kind, f.offset, f.length]),
    [['unallocated', MiB, MiB]],
  )
  const dev = await fs.promises.readFile(s.dev2)
  assert.ok(dev.subarray(2 * MiB + 4096, 2 * MiB + 8192).every((b) => b === 0x77))
  assert.ok(dev.subarray(2 * MiB, 2 * MiB + 4096).every((b) => b === 0))
  await unmountAgent(s.mnt, s.socket)
})

/** The front end `vstor mount` picks by default: libfuse3 (under CI it must be built). */
function defaultIsLibfuse3(): boolean {
  if (!fuse3Available() && process.env.CI) throw new Error('native/fuse3 is not built (bin/setup builds it); under CI this is a failure')
  return fuse3Available()
}

test('mount: busy unmount is refused; a killed agent leaves a dead mount (ENOTCONN) that vstor unmount clears; a new agent serves the data', async (t) => {
  if (!canMount(t)) return
  const s = await setup(t)
  await s.startAgent()
  const q = await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x61 1M 64k', s.img])
  assert.equal(q.code, 0, q.out)
  const fh = await fs.promises.open(s.img, 'r')
  await assert.rejects(unmountAgent(s.mnt, s.socket), (e: Error & { code?: string }) => e.code === 'MOUNT_BUSY' && /busy/.test(e.message))
  assert.equal(await isMounted(s.mnt), true, 'a refused unmount leaves the agent serving')
  assert.equal((await fh.read(Buffer.alloc(512), 0, 512, MiB)).bytesRead, 512)
  await fh.close()

  s.child()!.kill('SIGKILL')
  await new Promise((r) => s.child()!.once('exit', r))
  if (defaultIsLibfuse3()) {
    // No fusermount3 for auto_unmount: the dead mount stays and answers ENOTCONN.
    await assert.rejects(fs.promises.stat(s.mnt), { code: 'ENOTCONN' })
    assert.equal(await isMounted(s.mnt), true)
  }
  // vstor unmount clears a dead vstor mount (and its pid file) itself.
  if (await isMounted(s.mnt)) await unmountAgent(s.mnt, s.socket)
  assert.equal(await isMounted(s.mnt), false)
  assert.equal(await exists(pidFilePath(s.mnt, s.socket)), false)
  await assert.rejects(unmountAgent(s.mnt, s.socket), { code: 'NOT_MOUNTED' })

  await s.startAgent()
  const r = await sh('qemu-io', ['-f', 'raw', '-c', 'read -P 0x61 1M 64k', s.img])
  assert.equal(r.code, 0, r.out)
  assert.doesNotMatch(r.out, /fail|mismatch/i)
  await unmountAgent(s.mnt, s.socket)
})

test('mount: the default front end is libfuse3; a killed agent leaves ENOTCONN, the next start clears it', async (t) => {
  if (!canMount(t)) return
  if (!defaultIsLibfuse3()) return t.skip('needs native/fuse3 built (bin/setup)')
  const s = await setup(t)
  await s.startAgent()
  const line = (await fs.promises.readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === s.mnt)
  assert.match(line ?? '', / - fuse\.vstor vstor /)
  assert.equal(s.ctl.lastHello?.frontend, 'libfuse3', 'the hello names the front end (status and agent list show it)')
  const q = await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x61 2040k 64k', '-c', 'read -P 0x61 2040k 64k', s.img])
  assert.equal(q.code, 0, q.out)
  assert.doesNotMatch(q.out, /fail|mismatch/i)

  s.child()!.kill('SIGKILL')
  await new Promise((r) => s.child()!.once('exit', r))
  await assert.rejects(fs.promises.stat(s.mnt), { code: 'ENOTCONN' })
  await fs.promises.rm(pidFilePath(s.mnt, s.socket)) // the killed agent's (startAgent waits for a new one)
  await s.startAgent()
  const r = await sh('qemu-io', ['-f', 'raw', '-c', 'read -P 0x61 2040k 64k', s.img])
  assert.equal(r.code, 0, r.out)
  assert.doesNotMatch(r.out, /fail|mismatch/i)
  await unmountAgent(s.mnt, s.socket)
  assert.equal(await isMounted(s.mnt), false)
})

test('mount --fuse fuse-native: a killed agent leaves no dead mount (auto_unmount through fusermount)', async (t) => {
  if (!canMount(t)) return
  const s = await setup(t)
  await s.startAgent({ fuse: 'fuse-native' })
  assert.equal(s.ctl.lastHello?.frontend, 'fuse-native')
  const q = await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x62 1M 64k', s.img])
  assert.equal(q.code, 0, q.out)
  s.child()!.kill('SIGKILL')
  await new Promise((r) => s.child()!.once('exit', r))
  await waitFor('auto_unmount', async () => !(await isMounted(s.mnt)), 10_000)
  await fs.promises.rm(pidFilePath(s.mnt, s.socket))
  await s.startAgent({ fuse: 'fuse-native' })
  const r = await sh('qemu-io', ['-f', 'raw', '-c', 'read -P 0x62 1M 64k', s.img])
  assert.equal(r.code, 0, r.out)
  assert.doesNotMatch(r.out, /fail|mismatch/i)
  await unmountAgent(s.mnt, s.socket)
})
