// Fuse3 (libfuse 3 low-level front end) against a real kernel mount: an in-memory file system in a
// child process, driven by dd, fio, fallocate, python and setpriv. Each assertion fails on a
// front end without the feature (fuse-native: 128 KiB requests, one libaio request at a time,
// no fallocate/lseek).

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { sh, shOk } from '../../helpers/proc'
import { serve } from './child'

const MiB = 2 ** 20
const TiB = 2 ** 40
const py = (code: string, ...args: string[]) => shOk('python3', ['-c', code, ...args])

test('fuse3: readdir, exact sizes, a write/read round trip, EPERM on namespace changes', async (t) => {
  const s = await serve(t, {
    frontend: 'fuse3',
    files: [
      { name: 'a.img', size: 3 * MiB + 123 },
      { name: 'b.img', size: 4096 },
    ],
  })
  assert.deepEqual((await fs.promises.readdir(s.mnt)).sort(), ['a.img', 'b.img'])
  const file = path.join(s.mnt, 'a.img')
  const st = await fs.promises.stat(file)
  assert.equal(st.size, 3 * MiB + 123)
  assert.equal(st.mode, 0o100644)
  assert.ok(st.isFile())
  assert.equal(st.ino, (await fs.promises.stat(file)).ino, 'stable inode number per name')

  const data = crypto.randomBytes(MiB + 4567)
  const fh = await fs.promises.open(file, 'r+')
  try {
    assert.equal((await fh.write(data, 0, data.length, 1000)).bytesWritten, data.length)
    const back = Buffer.alloc(data.length)
    assert.equal((await fh.read(back, 0, back.length, 1000)).bytesRead, data.length)
    assert.ok(back.equals(data), 'read back what was written')
    const tail = Buffer.alloc(4096)
    assert.equal((await fh.read(tail, 0, 4096, 3 * MiB)).bytesRead, 123, 'short read at the end of the file')
  } finally {
    await fh.close()
  }

  for (const [what, op] of [
    ['create', () => fs.promises.writeFile(path.join(s.mnt, 'new.img'), 'x')],
    ['unlink', () => fs.promises.unlink(file)],
    ['mkdir', () => fs.promises.mkdir(path.join(s.mnt, 'd'))],
    ['rename', () => fs.promises.rename(file, path.join(s.mnt, 'c.img'))],
  ] as const) {
    await assert.rejects(op(), { code: 'EPERM' }, what)
  }
  await assert.rejects(fs.promises.truncate(file, 10), { code: 'EPERM' }, 'truncate to another size')
  await fs.promises.truncate(file, 3 * MiB + 123) // the same size is fine

  const line = (await fs.promises.readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === s.mnt)
  assert.match(line ?? '', /^vstor \S+ fuse\.vstor .*allow_other.*max_read=1048576/)
})

test('fuse3: 1 MiB direct reads and writes reach the handler whole', async (t) => {
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'a.img', size: 16 * MiB }] })
  assert.equal((s.mounted.conn as { maxWrite: number }).maxWrite, MiB)
  const file = path.join(s.mnt, 'a.img')
  await shOk('dd', ['if=/dev/zero', `of=${file}`, 'bs=4M', 'count=2', 'oflag=direct', 'conv=notrunc'])
  await shOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=4M', 'count=2', 'iflag=direct'])
  const st = await s.stats()
  assert.equal(st.maxLen.write, MiB)
  assert.equal(st.maxLen.read, MiB)
})

test('fuse3: libaio QD16 direct I/O keeps many requests in flight (FUSE_ASYNC_DIO)', async (t) => {
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'a.img', size: 64 * MiB }], deferMs: 5 })
  assert.equal((s.mounted.conn as { asyncDio: boolean }).asyncDio, true)
  const fio = (rw: string) =>
    shOk('fio', [
      '--name=qd16',
      `--filename=${path.join(s.mnt, 'a.img')}`,
      '--ioengine=libaio',
      '--direct=1',
      '--iodepth=16',
      `--rw=${rw}`,
      '--bs=4k',
      '--size=64M',
      '--io_size=1M',
      '--randrepeat=0',
    ])
  await fio('randread')
  await fio('randwrite')
  const st = await s.stats()
  assert.ok(st.maxInflight.read >= 8, `reads in flight at once: ${st.maxInflight.read}`)
  assert.ok(st.maxInflight.write >= 8, `writes in flight at once: ${st.maxInflight.write}`)
})

test('fuse3: fallocate (punch hole, zero range) and SEEK_DATA/SEEK_HOLE reach their handlers', async (t) => {
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'a.img', size: 8 * MiB }] })
  const file = path.join(s.mnt, 'a.img')
  await shOk('dd', ['if=/dev/urandom', `of=${file}`, 'bs=64k', 'count=4', `seek=${MiB / 65536}`, 'conv=notrunc'])
  await shOk('fallocate', ['-p', '-o', String(MiB + 65536), '-l', '65536', file])
  await shOk('fallocate', ['-z', '-o', String(4 * MiB), '-l', String(MiB), file])
  const st = await s.stats()
  assert.deepEqual(
    st.fallocate.map((f) => [f.path, f.mode, f.offset, f.length]),
    [
      ['/a.img', 3, MiB + 65536, 65536], // PUNCH_HOLE | KEEP_SIZE
      ['/a.img', 16, 4 * MiB, MiB], // ZERO_RANGE
    ],
  )
  const r = await py(
    'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 1048576, os.SEEK_HOLE), os.lseek(fd, 1179648, os.SEEK_DATA))',
    file,
  )
  // data at 1 MiB, a hole at 1 MiB + 64k (punched), data again at 1 MiB + 128k
  assert.equal(r.stdout.trim(), `${MiB} ${MiB + 65536} ${MiB + 131072}`)
  assert.deepEqual(
    (await s.stats()).lseek.map((l) => l.whence),
    [3, 4, 3],
  )
})

test('fuse3: default_permissions applies mode/uid/gid from getattr to other users', async (t) => {
  const s = await serve(t, {
    frontend: 'fuse3',
    options: ['fsname=vstor', 'subtype=vstor', 'allow_other', 'default_permissions'],
    files: [
      { name: 'root-only.img', size: 4096, mode: 0o100600 },
      { name: 'shared.img', size: 4096, mode: 0o100666 },
      { name: 'nobodys.img', size: 4096, mode: 0o100600, uid: 65534, gid: 65534 },
    ],
  })
  const asNobody = (file: string) =>
    sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'dd', `if=${path.join(s.mnt, file)}`, 'of=/dev/null', 'bs=4k'])
  const denied = await asNobody('root-only.img')
  assert.notEqual(denied.code, 0)
  assert.match(denied.stderr, /Permission denied/)
  assert.equal((await asNobody('shared.img')).code, 0)
  assert.equal((await asNobody('nobodys.img')).code, 0)
  assert.equal((await fs.promises.stat(path.join(s.mnt, 'nobodys.img'))).uid, 65534)
})

test('fuse3: sizes and offsets past 2^44 are exact (stat, statfs, pread/pwrite)', async (t) => {
  const size = 20 * TiB + 4096 + 512
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'big.img', size }] })
  const file = path.join(s.mnt, 'big.img')
  assert.equal((await fs.promises.stat(file)).size, size)
  const pos = size - 4096 - 100 // past 2^44, unaligned
  const r = await py(
    'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); p=int(sys.argv[2]); os.pwrite(fd, b"vstor-far-away", p); print(os.pread(fd, 14, p).decode())',
    file,
    String(pos),
  )
  assert.equal(r.stdout.trim(), 'vstor-far-away')
  assert.ok((await s.stats()).positions.includes(pos), 'the handler saw the exact offset')
  const df = await shOk('stat', ['-f', '-c', '%b %S', s.mnt])
  const [blocks, bsize] = df.stdout.trim().split(' ').map(Number)
  assert.equal(blocks, Math.ceil(size / 4096))
  assert.ok(blocks! > 2 ** 32, 'statfs block count past 32 bits')
  assert.equal(bsize, 4096)
})

test('fuse3: a handler that throws gets EIO, a second callback is ignored, the server keeps serving', async (t) => {
  const s = await serve(t, {
    frontend: 'fuse3',
    files: [
      { name: 'throws.img', size: 4096 },
      { name: 'twice.img', size: 4096 },
      { name: 'good.img', size: 4096 },
    ],
    faulty: { throws: 'throws.img', twice: 'twice.img' },
  })
  const read = (name: string) => fs.promises.readFile(path.join(s.mnt, name))
  await assert.rejects(read('throws.img'), { code: 'EIO' })
  assert.equal((await read('twice.img')).length, 0, 'the first answer (0 bytes) counts')
  assert.equal((await read('good.img')).length, 4096)
  assert.equal(s.child.exitCode, null)
})

test('fuse3: parallelDirectWrites lets direct writes to one file overlap (FOPEN_PARALLEL_DIRECT_WRITES)', async (t) => {
  const writers = (s: { mnt: string }) =>
    shOk('fio', [
      '--name=pdw',
      `--filename=${path.join(s.mnt, 'a.img')}`,
      '--ioengine=psync',
      '--direct=1',
      '--numjobs=4',
      '--rw=randwrite',
      '--bs=4k',
      '--size=16M',
      '--io_size=128k',
      '--randrepeat=0',
    ])
  const files = [{ name: 'a.img', size: 16 * MiB }]
  const plain = await serve(t, { frontend: 'fuse3', files, deferMs: 5 })
  await writers(plain)
  assert.equal((await plain.stats()).maxInflight.write, 1, 'without it the inode lock serialises them')
  const parallel = await serve(t, { frontend: 'fuse3', files, deferMs: 5, fuse3: { parallelDirectWrites: true } })
  await writers(parallel)
  assert.ok((await parallel.stats()).maxInflight.write >= 2, 'writes from several writers in flight at once')
})
