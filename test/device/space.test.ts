// zero / discard / reserve on regular files, with native/blkio and with the pure-Node fallback
// (selected explicitly, and through VSTOR_NO_NATIVE=blkio in a fresh process): what each
// promises afterwards (zeros, allocation), and the range checks.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { loadBlkio, type Blkio } from '../../src/device/blkio'
import { openDeviceWith } from '../../src/device/device'
import { allBytes, allocated, makeFile, MiB, needAddon, peek, run, scope } from './helpers'

const addon = loadBlkio()
const variants: [string, Blkio | null][] = [
  ['blkio', addon],
  ['fallback', null],
]

for (const [name, blk] of variants) {
  test(`space (${name}): zero reads zeros and allocates; discard reads zeros; reserve keeps contents`, async (t) => {
    if (name === 'blkio' && !needAddon(t, blk)) return
    const s = scope(t)
    const dir = s.tempDir()
    const full = makeFile(path.join(dir, 'full'), 16 * MiB, 0xaa)
    const dev = await openDeviceWith(full, { mode: 'async' }, blk)
    s.defer(() => dev.close())
    assert.equal(dev.native, blk !== null)

    await dev.zero(2 * MiB + 4096, 2 * MiB)
    assert.ok(allBytes(peek(full, 2 * MiB + 4096, 2 * MiB), 0), 'zeroed range reads zeros')
    assert.ok(allBytes(peek(full, 2 * MiB, 4096), 0xaa), 'the byte before is untouched')
    assert.ok(allBytes(peek(full, 4 * MiB + 4096, 4096), 0xaa), 'the byte after is untouched')

    const before = allocated(full)
    await dev.discard(8 * MiB, 4 * MiB)
    assert.ok(allBytes(peek(full, 8 * MiB, 4 * MiB), 0), 'discarded range reads zeros')
    assert.ok(allBytes(peek(full, 12 * MiB, MiB), 0xaa))
    if (blk) assert.ok(allocated(full) <= before - 4 * MiB, 'a file discard punches a hole')

    await dev.reserve(12 * MiB, 4 * MiB)
    assert.ok(allBytes(peek(full, 12 * MiB, 4 * MiB), 0xaa), 'reserve keeps the contents')

    const sparse = makeFile(path.join(dir, 'sparse'), 16 * MiB)
    const sp = await openDeviceWith(sparse, { mode: 'sync' }, blk)
    s.defer(() => sp.close())
    assert.equal(allocated(sparse), 0)
    await sp.zero(MiB, 4 * MiB)
    assert.ok(allocated(sparse) >= 4 * MiB, 'zero allocates the range')
    assert.ok(allBytes(peek(sparse, 0, 16 * MiB), 0))
    await sp.reserve(8 * MiB, 4 * MiB)
    if (blk) assert.ok(allocated(sparse) >= 8 * MiB, 'reserve allocates with fallocate(KEEP_SIZE)')
    else assert.ok(allocated(sparse) < 8 * MiB, 'without the addon reserve is a no-op')
    assert.ok(allBytes(peek(sparse, 0, 16 * MiB), 0))
    await sp.syncP()
    assert.equal(dev.inflight + sp.inflight, 0)
  })

  test(`space (${name}): ranges are checked (integers >= 0, inside the device); empty ranges do nothing`, async (t) => {
    if (name === 'blkio' && !needAddon(t, blk)) return
    const s = scope(t)
    const dev = await openDeviceWith(makeFile(path.join(s.tempDir(), 'f'), 4 * MiB, 0x33), {}, blk)
    s.defer(() => dev.close())
    for (const op of ['zero', 'discard', 'reserve'] as const) {
      for (const [pos, len] of [
        [-1, 4096],
        [0, -4096],
        [0.5, 4096],
        [0, NaN],
        [2 ** 53, 1],
        [4 * MiB - 4096, 8192],
        [4 * MiB + 1, 0],
      ] as const) {
        await assert.rejects(dev[op](pos, len), { code: 'EINVAL' }, `${op}(${pos}, ${len})`)
      }
      await dev[op](4 * MiB, 0)
    }
    assert.ok(allBytes(peek(dev.path, 0, 4 * MiB), 0x33), 'refused requests changed nothing')
    await dev.zero(4 * MiB - 4096, 4096)
    assert.ok(allBytes(peek(dev.path, 4 * MiB - 4096, 4096), 0), 'the last block of the device can be zeroed')
  })
}

test('space: VSTOR_NO_NATIVE=blkio selects the fallback in a fresh process', async (t) => {
  const s = scope(t)
  const file = makeFile(path.join(s.tempDir(), 'f'), 4 * MiB, 0x55)
  const index = path.resolve(__dirname, '../../src/device/index.js')
  const script = `require(${JSON.stringify(index)}).openDevice(process.argv[1]).then(async (d) => {
    await d.zero(0, 1 << 20); await d.discard(1 << 20, 1 << 20); await d.reserve(2 << 20, 1 << 20)
    process.stdout.write(JSON.stringify({ native: d.native })); await d.close() })`
  const hidden = await run(process.execPath, ['-e', script, file], { env: { ...process.env, VSTOR_NO_NATIVE: 'blkio' } })
  assert.deepEqual(JSON.parse(hidden.stdout), { native: false })
  assert.ok(allBytes(peek(file, 0, 2 * MiB), 0))
  assert.ok(allBytes(peek(file, 2 * MiB, 2 * MiB), 0x55))
  if (addon) {
    const env = { ...process.env }
    delete env.VSTOR_NO_NATIVE
    const shown = await run(process.execPath, ['-e', script, file], { env })
    assert.deepEqual(JSON.parse(shown.stdout), { native: true })
  }
})
