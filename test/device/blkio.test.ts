// native/blkio on its own: constants, the argument checks (integers in [0, 2^53 - 1], so 2^44
// and 2^50 arrive exactly), Node-style errno errors, SEEK_DATA / SEEK_HOLE, and async calls that
// call back once from the pool.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { loadBlkio } from '../../src/device/blkio'
import { io, makeFile, MiB, needAddon, scope } from './helpers'

const blk = loadBlkio()

test('blkio: constants are the kernel FALLOC_FL_* bits', (t) => {
  if (!needAddon(t, blk)) return
  assert.equal(blk.FALLOC_FL_KEEP_SIZE, 1)
  assert.equal(blk.FALLOC_FL_PUNCH_HOLE, 2)
  assert.equal(blk.FALLOC_FL_ZERO_RANGE, 16)
})

test('blkio: offsets are integers in [0, 2^53 - 1] and arrive exactly (2^44, 2^50)', (t) => {
  if (!needAddon(t, blk)) return
  for (const v of [0, 1, 2 ** 32, 2 ** 32 + 1, 2 ** 44 - 2 * MiB, 2 ** 44, 2 ** 44 + 1, 2 ** 50, 2 ** 50 + 4096, 2 ** 53 - 1]) {
    assert.equal(blk.checkOffset(v), BigInt(v), `${v}`)
  }
  for (const v of [-1, -0.5, 1.5, 2 ** 50 + 0.5, 2 ** 53, 2 ** 64, NaN, Infinity, -Infinity]) {
    assert.throws(() => blk.checkOffset(v), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `${v}`)
  }
  for (const v of ['1', 1n, null, undefined, {}]) {
    assert.throws(() => blk.checkOffset(v), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `${String(v)}`)
  }
})

test('blkio: bad arguments throw synchronously and never call back', (t) => {
  if (!needAddon(t, blk)) return
  const never = () => assert.fail('callback called')
  const { FALLOC_FL_KEEP_SIZE: KEEP } = blk
  assert.throws(() => blk.fallocate(-1, KEEP, 0, 1, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.fallocate(0, 64, 0, 1, never), { code: 'ERR_OUT_OF_RANGE' }, 'unknown mode bits')
  assert.throws(() => blk.fallocate(0, KEEP, -4096, 1, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.fallocate(0, KEEP, 2 ** 50, 0.5, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.fallocate(0, KEEP, 0, 1, 'cb' as never), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => (blk.fallocate as (...a: unknown[]) => void)(0, KEEP, 0), { code: 'ERR_INVALID_ARG_TYPE' }, 'too few arguments')
  assert.throws(() => blk.zeroout(0, 2 ** 53, 1, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.discard(0, 0, -1, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.writeBehind(0, 2 ** 53, 1, never), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.seekData(0, -1), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => blk.blockSize64(1.5), { code: 'ERR_OUT_OF_RANGE' })
})

test('blkio: errors are Node-style errno errors; seekData/seekHole; fallocate on a file', async (t) => {
  if (!needAddon(t, blk)) return
  const s = scope(t)
  const file = makeFile(path.join(s.tempDir(), 'f'), 4 * MiB)
  const fd = fs.openSync(file, 'r+')
  s.defer(() => fs.closeSync(fd))

  assert.throws(
    () => blk.blockSize64(fd),
    (e: NodeJS.ErrnoException) => {
      assert.ok(e instanceof Error)
      assert.equal(e.code, 'ENOTTY')
      assert.equal(e.errno, -25)
      assert.equal(e.syscall, 'ioctl(BLKGETSIZE64)')
      assert.match(e.message, /^ENOTTY: .+, ioctl\(BLKGETSIZE64\)$/)
      return true
    },
  )
  const zerr = await io((cb) => blk.zeroout(fd, 0, 4096, cb))
  assert.equal(zerr?.code, 'ENOTTY', 'BLKZEROOUT on a regular file')
  assert.equal(zerr?.errno, -25)
  assert.ok(zerr instanceof Error)
  const ro = fs.openSync(file, 'r')
  s.defer(() => fs.closeSync(ro))
  const berr = await io((cb) => blk.fallocate(ro, blk.FALLOC_FL_KEEP_SIZE, 0, 4096, cb))
  assert.equal(berr?.code, 'EBADF', 'fallocate on a read-only fd')
  assert.equal(berr?.errno, -9)

  assert.equal(blk.seekData(fd, 0), -1, 'a sparse file has no data')
  fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, MiB + 8192)
  assert.equal(blk.seekData(fd, 0), MiB + 8192)
  assert.equal(blk.seekHole(fd, MiB + 8192), MiB + 12288)
  assert.equal(blk.seekData(fd, 8 * MiB), -1, 'past EOF: ENXIO is -1')
  assert.equal(blk.seekHole(fd, 8 * MiB), -1)

  assert.equal(await io((cb) => blk.fallocate(fd, blk.FALLOC_FL_PUNCH_HOLE | blk.FALLOC_FL_KEEP_SIZE, MiB, MiB, cb)), null)
  assert.equal(blk.seekData(fd, 0), -1, 'the punched block is a hole again')
  assert.equal(await io((cb) => blk.fallocate(fd, blk.FALLOC_FL_KEEP_SIZE, 0, 8 * MiB, cb)), null)
  assert.equal(fs.fstatSync(fd).size, 4 * MiB, 'KEEP_SIZE keeps the size')
  assert.ok(fs.fstatSync(fd).blocks * 512 >= 8 * MiB, 'allocated past EOF')
  fs.writeSync(fd, Buffer.alloc(MiB, 7), 0, MiB, 2 * MiB)
  assert.equal(await io((cb) => blk.writeBehind(fd, 2 * MiB, MiB, cb)), null, 'writeback of a dirty range starts')
  const werr = await io((cb) => blk.writeBehind(1 << 30, 0, MiB, cb))
  assert.equal(werr?.code, 'EBADF')
  assert.equal(werr?.syscall, 'sync_file_range')
})
