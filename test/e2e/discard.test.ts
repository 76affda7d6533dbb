// Discard and holes end to end (libfuse3, the default front end): fstrim of ext4 over losetup and
// blkdiscard of a range give a thin disk's units back (disk list's allocated falls), partial units
// read zeros, qemu-img map sees the holes through SEEK_DATA/SEEK_HOLE, and discard obeys the
// entry states (no-write EROFS, invalid and error EIO) with the data intact once they clear.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, qemuIoOk, sh, shOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'

const allocated = async (v: Instance, disk: string): Promise<number> => (await v.diskList()).find((d) => d.name === disk)?.allocated ?? NaN

/** Wait until the disk's allocated bytes are at most `most`; returns them. */
async function allocatedFalls(v: Instance, disk: string, most: number): Promise<number> {
  return waitFor(
    `${disk} allocated <= ${most}`,
    async () => {
      const a = await allocated(v, disk)
      return a <= most ? a : null
    },
    30_000,
  ).catch(async () => assert.fail(`${disk} still has ${await allocated(v, disk)} bytes allocated, want <= ${most}`))
}

interface MapEntry {
  start: number
  length: number
  data: boolean
  zero: boolean
}

/** qemu-img map (raw over file: block status from SEEK_DATA/SEEK_HOLE) → [start, end, data] runs, merged. */
async function dataRuns(img: string): Promise<[number, number, boolean][]> {
  const r = await shOk('qemu-img', ['map', '--output=json', '-f', 'raw', img])
  const out: [number, number, boolean][] = []
  for (const e of JSON.parse(r.stdout) as MapEntry[]) {
    const last = out.at(-1)
    if (last && last[2] === e.data && last[1] === e.start) last[1] = e.start + e.length
    else out.push([e.start, e.start + e.length, e.data])
  }
  return out
}

const failsWith = async (cmd: string, args: string[], re: RegExp): Promise<void> => {
  const r = await sh(cmd, args)
  assert.notEqual(r.code, 0, `${cmd} ${args.join(' ')} succeeded`)
  assert.match(r.stderr, re, `${cmd} ${args.join(' ')}: ${r.stderr}`)
}

test('discard and holes on a thin disk: fstrim, blkdiscard, qemu-img map, entry states', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(160 * MiB, 'd0')
  await v.run(['disk', 'create', 'fs', '--size', '64M', '--thin'])
  await v.run(['disk', 'create', 'bd', '--size', '32M', '--thin'])
  await v.mount()
  const agent = (await v.status()).agents[0]
  assert.equal(agent?.frontend, 'libfuse3', 'status shows the front end (libfuse3 by default)')

  await t.test('fstrim of ext4 over losetup gives the units of a deleted file back', async () => {
    const loop = await v.losetupAttach(v.image('fs'))
    await shOk('mkfs.ext4', ['-q', '-F', loop])
    const dir = fs.mkdtempSync(path.join(v.dir, 'fs-'))
    await shOk('mount', [loop, dir])
    v.trackMount(dir)
    const base = await allocated(v, 'fs')
    await shOk('dd', ['if=/dev/urandom', `of=${path.join(dir, 'big')}`, 'bs=1M', 'count=32', 'conv=fsync'])
    const full = await allocated(v, 'fs')
    assert.ok(full >= base + 32 * MiB, `allocated ${full} after writing 32 MiB (was ${base})`)
    fs.rmSync(path.join(dir, 'big'))
    await shOk('sync', ['-f', path.join(dir, '.')])
    const trim = await shOk('fstrim', ['-v', dir])
    assert.match(trim.stdout, /trimmed/)
    const after = await allocatedFalls(v, 'fs', full - 24 * MiB)
    assert.ok(after < full, `allocated ${after} < ${full}`)
    await shOk('umount', [dir])
    const fsck = await sh('fsck.ext4', ['-fn', loop])
    assert.equal(fsck.code, 0, `fsck.ext4 -fn: ${fsck.stdout} ${fsck.stderr}`)
    await v.losetupDetach(loop)
  })

  const img = v.image('bd')
  await t.test('blkdiscard of a range: whole units go back, a partial one reads zeros in place', async () => {
    await qemuIoOk(img, ['write -P 0x5a 0 16M'])
    assert.equal(await allocated(v, 'bd'), 16 * MiB)
    const loop = await v.losetupAttach(img)
    await shOk('blkdiscard', ['-o', String(4 * MiB), '-l', String(4 * MiB), loop])
    await allocatedFalls(v, 'bd', 12 * MiB)
    await shOk('blkdiscard', ['-o', String(9 * MiB), '-l', String(64 * 1024), loop]) // inside one unit
    await v.losetupDetach(loop)
    assert.equal(await allocated(v, 'bd'), 12 * MiB, 'a partial unit stays allocated')
    await qemuIoOk(img, [
      'read -P 0x5a 0 4M',
      `read -P 0 ${4 * MiB} 4M`,
      `read -P 0x5a ${8 * MiB} 1M`,
      `read -P 0 ${9 * MiB} 64k`,
      `read -P 0x5a ${9 * MiB + 65536} ${7 * MiB - 65536}`,
    ])
    // fallocate -p on the image itself (PUNCH_HOLE|KEEP_SIZE) does the same.
    await shOk('fallocate', ['-p', '-o', String(12 * MiB), '-l', String(2 * MiB), img])
    await allocatedFalls(v, 'bd', 10 * MiB)
  })

  await t.test('qemu-img map shows the zero extents as holes (SEEK_DATA/SEEK_HOLE)', async () => {
    assert.deepEqual(await dataRuns(img), [
      [0, 4 * MiB, true],
      [4 * MiB, 8 * MiB, false],
      [8 * MiB, 12 * MiB, true],
      [12 * MiB, 14 * MiB, false],
      [14 * MiB, 16 * MiB, true],
      [16 * MiB, 32 * MiB, false],
    ])
  })

  await t.test('discard obeys the entry states: no-write EROFS, invalid and error EIO; the data stays', async () => {
    const at = 2 * MiB
    for (const [state, re] of [
      ['no-write', /Read-only file system/],
      ['invalid', /Input\/output error/],
      ['error', /Input\/output error/],
    ] as const) {
      await v.run(['extent', 'set', 'bd', '--offset', String(at), '--length', '1M', '--set', state])
      await failsWith('fallocate', ['-p', '-o', String(at), '-l', String(MiB), img], re) // a whole unit
      await failsWith('fallocate', ['-p', '-o', String(at + 4096), '-l', '4096', img], re) // part of one
      await v.run(['extent', 'set', 'bd', '--offset', String(at), '--length', '1M', '--clear', state])
    }
    assert.equal(await allocated(v, 'bd'), 10 * MiB)
    await qemuIoOk(img, [`read -P 0x5a ${at} 1M`])
  })
})
