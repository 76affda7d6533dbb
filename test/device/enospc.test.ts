// ENOSPC from zero() and reserve() on a small tmpfs that fills (tmpfs has no ZERO_RANGE, so the
// PUNCH_HOLE + fallocate path runs), with the addon and without; and the point of zero(): space
// it zeroed stays writable after the file system filled up.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { loadBlkio, type Blkio } from '../../src/device/blkio'
import { openDeviceWith } from '../../src/device/device'
import { allocated, io, makeFile, MiB, needAddon, needRoot, scope } from './helpers'

const addon = loadBlkio()
const variants: [string, Blkio | null][] = [
  ['blkio', addon],
  ['fallback', null],
]

const enospc = (e: unknown) => {
  const err = e as NodeJS.ErrnoException
  assert.equal(err.code, 'ENOSPC', `code ENOSPC, got ${err.code}: ${err.message}`)
  assert.equal(err.errno, -28)
  assert.ok(err instanceof Error)
  return true
}

test('enospc (blkio): tmpfs lacks ZERO_RANGE; zero() and reserve() past its size fail with ENOSPC', async (t) => {
  if (!needRoot(t, 'mounting a tmpfs') || !needAddon(t, addon)) return
  const s = scope(t)
  const mnt = await s.tmpfs('8m')
  const file = makeFile(path.join(mnt, 'dev'), 32 * MiB)
  const dev = await openDeviceWith(file, {}, addon)
  s.defer(() => dev.close())
  const zr = await io((cb) => addon.fallocate(dev.fd, addon.FALLOC_FL_ZERO_RANGE | addon.FALLOC_FL_KEEP_SIZE, 0, MiB, cb))
  assert.equal(zr?.code, 'EOPNOTSUPP', 'the fallback path is the one under test')
  await assert.rejects(dev.zero(0, 32 * MiB), enospc)
  await assert.rejects(dev.reserve(0, 32 * MiB), enospc)
  await dev.zero(0, 2 * MiB)
  assert.ok(allocated(file) >= 2 * MiB)
})

test('enospc (fallback): zero writes fail with ENOSPC; reserve is a no-op', async (t) => {
  if (!needRoot(t, 'mounting a tmpfs')) return
  const s = scope(t)
  const mnt = await s.tmpfs('8m')
  const file = makeFile(path.join(mnt, 'dev'), 32 * MiB)
  const dev = await openDeviceWith(file, {}, null)
  s.defer(() => dev.close())
  await dev.reserve(0, 32 * MiB)
  assert.equal(allocated(file), 0)
  await assert.rejects(dev.zero(0, 32 * MiB), enospc)
})

for (const [name, blk] of variants) {
  test(`enospc (${name}): zeroed space stays writable once the file system is full`, async (t) => {
    if (!needRoot(t, 'mounting a tmpfs') || (name === 'blkio' && !needAddon(t, blk))) return
    const s = scope(t)
    const mnt = await s.tmpfs('8m')
    const file = makeFile(path.join(mnt, 'dev'), 4 * MiB)
    const dev = await openDeviceWith(file, { mode: 'sync' }, blk)
    s.defer(() => dev.close())
    await dev.zero(0, 4 * MiB)

    const filler = fs.openSync(path.join(mnt, 'filler'), 'w')
    s.defer(() => fs.closeSync(filler))
    const chunk = Buffer.alloc(MiB, 1)
    let full: unknown = null
    for (let at = 0; full === null && at < 64 * MiB; at += MiB) {
      try {
        fs.writeSync(filler, chunk, 0, MiB, at)
      } catch (e) {
        full = e
      }
    }
    assert.ok(enospc(full), 'the file system is full')
    assert.equal(await io((cb) => dev.write(Buffer.alloc(4 * MiB, 0x99), 0, 4 * MiB, 0, cb)), null, 'the zeroed range takes a write')
    await dev.syncP()
  })
}
