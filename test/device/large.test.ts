// Offsets past 2^44 through every layer of Device on a sparse file: /tmp (ext4 here caps files
// at 16 TiB - 4 KiB, so the range sits just below 2^44) and a tmpfs file past 2^50. SEEK_DATA
// after a 4 KiB write shows the offset arrived at the kernel exactly; the argument checks for
// 2^50 and beyond are unit-tested in blkio.test.ts.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { IO_MODES } from '../../src/device'
import { loadBlkio, type Blkio } from '../../src/device/blkio'
import { openDeviceWith } from '../../src/device/device'
import { allBytes, allocated, io, MiB, needAddon, needRoot, scope } from './helpers'

const addon = loadBlkio()

function sparse(file: string, size: number): string {
  fs.closeSync(fs.openSync(file, 'w'))
  fs.truncateSync(file, size)
  return file
}

async function exercise(file: string, hi: number, blk: Blkio | null, mode: 'sync' | 'async'): Promise<void> {
  const size = fs.statSync(file).size
  const dev = await openDeviceWith(file, { mode }, blk)
  try {
    assert.equal(dev.size, size)
    const data = Buffer.alloc(4096, 0xd7)
    assert.equal(await io((cb) => dev.write(data, 0, 4096, hi + 4096, cb)), null)
    const back = Buffer.alloc(12288)
    assert.equal(await io((cb) => dev.read(back, 0, 12288, hi, cb)), null)
    assert.ok(allBytes(back.subarray(0, 4096), 0) && allBytes(back.subarray(4096, 8192), 0xd7) && allBytes(back.subarray(8192), 0))
    if (blk) {
      assert.equal(blk.seekData(dev.fd, hi - MiB), hi + 4096, 'the write sits exactly at its offset')
      assert.equal(blk.seekHole(dev.fd, hi + 4096), hi + 8192)
    }
    await dev.discard(hi + 4096, 4096)
    if (blk) assert.equal(blk.seekData(dev.fd, hi - MiB), -1, 'the punch hit exactly that block')
    await dev.readAt(back, hi)
    assert.ok(allBytes(back, 0))

    const before = allocated(file)
    await dev.zero(hi, 512 * 1024)
    // (the fallback's discard wrote the one block at hi + 4096, so it may count already)
    assert.ok(allocated(file) - before >= 512 * 1024 - 4096, 'zero allocated the range')
    await dev.writeAt(data, size - 4096)
    await dev.reserve(size - MiB / 2, MiB / 2)
    const tail = Buffer.alloc(4096)
    await dev.readAt(tail, size - 4096)
    assert.ok(allBytes(tail, 0xd7), 'reserve kept the contents')
    assert.equal((await io((cb) => dev.read(Buffer.alloc(4096), 0, 4096, size - 2048, cb)))?.code, 'EIO')
    await assert.rejects(dev.zero(size - 4096, 8192), { code: 'EINVAL' })
  } finally {
    await dev.close()
  }
}

for (const mode of IO_MODES) {
  for (const [name, blk] of [
    ['blkio', addon],
    ['fallback', null],
  ] as [string, Blkio | null][]) {
    test(`large (${name}, ${mode}): a sparse file just below 2^44 in the temp dir`, async (t) => {
      if (name === 'blkio' && !needAddon(t, blk)) return
      const dir = scope(t).tempDir()
      const file = sparse(path.join(dir, 'big'), 2 ** 44 - MiB)
      await exercise(file, 2 ** 44 - 2 * MiB, blk, mode)
    })
  }
}

test('large (blkio): a tmpfs file past 2^50', async (t) => {
  if (!needRoot(t, 'mounting a tmpfs') || !needAddon(t, addon)) return
  const s = scope(t)
  const mnt = await s.tmpfs('16m')
  const file = sparse(path.join(mnt, 'huge'), 2 ** 50 + 4 * MiB)
  await exercise(file, 2 ** 50 + MiB, addon, 'async')
})
