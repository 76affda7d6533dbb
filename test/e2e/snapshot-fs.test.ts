// Issue 11 end to end: a snapshot of a disk in use, seen through a file
// system. ext4 on the first 32 MiB of a thin disk (losetup) holds files with
// known checksums; fio writes the last 24 MiB of the same disk straight
// through the image while the snapshot is taken. The snapshot attaches with
// `losetup -r`, fscks clean and mounts `ro,noload`: every file checksums as at
// snapshot time, changes made afterwards are absent. Writes to SNAP.img are
// EROFS. A clone of the snapshot takes writes that change neither the
// snapshot nor the origin (whole-image hashes before and after).
//
// Quiescing the file system: `sync` and then `fsfreeze -f` around the
// snapshot. `sync` alone writes the files and commits the journal, but the
// metadata may sit only in the journal; `ro,noload` (needed: a read-only
// loop cannot replay a journal) would then miss it. fsfreeze also flushes the
// journal into place and marks the file system clean. fio writes outside the
// file system, so freezing does not stop it: the snapshot is taken under load.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { DiskMap } from '../../src/protocol/messages'
import { hashFile, sumFiles, writeRandomFiles } from '../helpers/files'
import { MiB, sh, shOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'

const FS_SIZE = 32 * MiB
const FIO_AT = 40 * MiB

async function mountAt(v: Instance, dev: string, opts: string[]): Promise<string> {
  const dir = fs.mkdtempSync(path.join(v.dir, 'fs-'))
  await shOk('mount', [...opts, dev, dir])
  v.trackMount(dir)
  return dir
}

/** fio has written into its range: some unit at or past FIO_AT is mapped. */
function fioStarted(map: DiskMap): boolean {
  return map.extents.some((e) => e.offset + e.length > FIO_AT && !e.zero)
}

test('snapshot under load: ext4 files checksum as at snapshot time; clone writes touch neither side', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(256 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', '64M', '--thin'])
  await v.mount()
  const img = v.image('o')

  const loop = await v.losetupAttach(img)
  await shOk('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=0,lazy_journal_init=0', loop, String(FS_SIZE / 1024)])
  const dir = await mountAt(v, loop, [])
  const sizes = { 'a.bin': 3 * MiB + 17, 'b.bin': 512 * 1024, 'c.bin': 4096, 'd/e.bin': 1234567, 'd/f.txt': 10 }
  const sums = await writeRandomFiles(dir, sizes)
  const names = Object.keys(sizes)

  const fio = v.background('fio', [
    '--name=load',
    `--filename=${img}`,
    `--offset=${FIO_AT}`,
    `--size=${64 * MiB - FIO_AT}`,
    '--rw=randwrite',
    '--bs=4k',
    '--direct=1',
    '--ioengine=libaio',
    '--iodepth=8',
    '--time_based',
    '--runtime=300',
    '--verify=crc32c',
    '--verify_backlog=64',
    '--verify_state_save=0',
  ])
  await waitFor('fio writing its range', async () => fioStarted(await v.diskMap('o')) || fio.child.exitCode !== null, 30_000)
  assert.equal(fio.child.exitCode, null, 'fio stopped before the snapshot')

  await shOk('sync', [])
  await shOk('fsfreeze', ['-f', dir])
  try {
    await v.run(['disk', 'snapshot', 'o', 's'])
  } finally {
    await shOk('fsfreeze', ['-u', dir])
  }
  assert.equal(fio.child.exitCode, null, 'fio was not writing across the snapshot')
  // the origin moves on: one file rewritten, one deleted, one new
  await writeRandomFiles(dir, { 'a.bin': 2 * MiB, 'new.bin': 100_000 })
  await fs.promises.rm(path.join(dir, 'b.bin'))
  await shOk('sync', [])

  const snap = v.image('s')
  await t.test('SNAP.img is on the mount and refuses writes with EROFS', async () => {
    assert.ok(fs.existsSync(snap), 's.img is not on the mount after `disk snapshot` returned')
    assert.throws(() => fs.openSync(snap, 'r+'), { code: 'EROFS' })
    const q = await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 4k', snap])
    assert.match(q.stdout + q.stderr, /Read-only file system/)
    const info = (await v.diskList()).find((d) => d.name === 's')
    assert.deepEqual([info?.readonly, info?.origin], [true, 'o'])
  })

  await t.test('losetup -r of the snapshot: fsck clean, every file as at snapshot time', async () => {
    const ro = await v.losetupAttach(snap, { readOnly: true })
    const fsck = await sh('e2fsck', ['-fn', ro])
    assert.equal(fsck.code, 0, `e2fsck -fn on the snapshot: ${fsck.stdout}${fsck.stderr}`)
    const sdir = await mountAt(v, ro, ['-o', 'ro,noload'])
    assert.deepEqual(await sumFiles(sdir, names), sums)
    assert.equal(fs.existsSync(path.join(sdir, 'new.bin')), false, 'a file made after the snapshot is in it')
    await shOk('umount', [sdir])
    await v.losetupDetach(ro)
  })

  // fio and the origin's file system stop: from here the origin image must not change
  fio.child.kill('SIGINT')
  const f = await fio.done
  assert.match(f.stdout, /err= 0/, `fio: ${f.stdout}${f.stderr}`)
  assert.doesNotMatch(f.stdout + f.stderr, /verify: bad|verify failed/)
  await shOk('umount', [dir])
  await v.losetupDetach(loop)
  const before = { o: await hashFile(img), s: await hashFile(snap) }

  await t.test('a clone of the snapshot takes writes; the snapshot and the origin stay as they were', async () => {
    await v.run(['disk', 'clone', 's', 'c'])
    const c = await v.losetupAttach(v.image('c'))
    const cdir = await mountAt(v, c, [])
    assert.deepEqual(await sumFiles(cdir, names), sums, 'the clone starts as the snapshot')
    const mine = await writeRandomFiles(cdir, { 'c.bin': 3 * MiB, 'clone.bin': 777_777 })
    await shOk('umount', [cdir])
    await shOk('mount', ['-o', 'ro', c, cdir])
    assert.deepEqual(await sumFiles(cdir, ['c.bin', 'clone.bin', 'a.bin']), { ...mine, 'a.bin': sums['a.bin'] })
    await shOk('umount', [cdir])
    await v.losetupDetach(c)
    assert.deepEqual({ o: await hashFile(img), s: await hashFile(snap) }, before)
    const c2 = (await v.diskList()).find((d) => d.name === 'c')
    assert.deepEqual([c2?.readonly, c2?.origin], [false, 's'])
    assert.ok((c2?.exclusive ?? 0) > 0, 'the clone copied the units it wrote')
  })
})
