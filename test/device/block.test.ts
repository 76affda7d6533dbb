// Device on a block device (a loop device over a temp file): size by BLKGETSIZE64 and by sysfs,
// zero/discard by BLKZEROOUT (and zero writes where it does not apply), the label check, probe
// and scanLabels finding it.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { openDevice, probe, scanLabels, writeLabel } from '../../src/device'
import { loadBlkio, type Blkio } from '../../src/device/blkio'
import { openDeviceWith } from '../../src/device/device'
import { VstorError } from '../../src/errors'
import { allBytes, io, makeFile, MiB, needAddon, needRoot, scope } from './helpers'

const addon = loadBlkio()
const uuid = '5b7e1c2d-0000-4000-8000-00000000b10c'
const label = { version: 1, uuid, controllerId: 'c', name: 'loop', createdAt: '2026-01-01T00:00:00.000Z' }
const SIZE = 64 * MiB

for (const [name, blk] of [
  ['blkio', addon],
  ['fallback', null],
] as [string, Blkio | null][]) {
  test(`block (${name}): size, zero and discard read zeros, unaligned zero, reserve, EIO past the end`, async (t) => {
    if (!needRoot(t, 'losetup') || (name === 'blkio' && !needAddon(t, blk))) return
    const s = scope(t)
    const loop = await s.loop(makeFile(path.join(s.tempDir(), 'backing'), SIZE, 0xaa))
    const dev = await openDeviceWith(loop, { mode: 'async' }, blk)
    s.defer(() => dev.close())
    assert.equal(dev.kind, 'block')
    assert.equal(dev.size, SIZE)
    assert.equal(dev.native, blk !== null)

    const at = async (pos: number, len: number) => {
      const buf = Buffer.alloc(len)
      await dev.readAt(buf, pos)
      return buf
    }
    await dev.zero(MiB, 2 * MiB)
    assert.ok(allBytes(await at(MiB, 2 * MiB), 0))
    assert.ok(allBytes(await at(MiB - 4096, 4096), 0xaa))
    assert.ok(allBytes(await at(3 * MiB, 4096), 0xaa))
    await dev.discard(8 * MiB, 4 * MiB)
    assert.ok(allBytes(await at(8 * MiB, 4 * MiB), 0), 'discard on a block device reads zeros')
    assert.ok(allBytes(await at(12 * MiB, 4096), 0xaa))
    await dev.zero(16 * MiB + 100, 1000) // not sector aligned: BLKZEROOUT says EINVAL, zero writes do it
    const around = await at(16 * MiB, 4096)
    assert.ok(allBytes(around.subarray(0, 100), 0xaa) && allBytes(around.subarray(100, 1100), 0) && allBytes(around.subarray(1100), 0xaa))
    await dev.reserve(20 * MiB, 4 * MiB)
    assert.ok(allBytes(await at(20 * MiB, 4 * MiB), 0xaa), 'reserve on a block device changes nothing')
    await dev.zero(SIZE - MiB, MiB)
    assert.ok(allBytes(await at(SIZE - MiB, MiB), 0))
    await assert.rejects(dev.zero(SIZE - MiB, 2 * MiB), { code: 'EINVAL' })
    assert.equal((await io((cb) => dev.read(Buffer.alloc(4096), 0, 4096, SIZE - 2048, cb)))?.code, 'EIO')
    await dev.syncP()
  })
}

test('block: the label check, probe and scanLabels on a loop device', async (t) => {
  if (!needRoot(t, 'losetup')) return
  const s = scope(t)
  const loop = await s.loop(makeFile(path.join(s.tempDir(), 'backing'), SIZE))
  await assert.rejects(openDevice(loop, { uuid }), (e: unknown) => e instanceof VstorError && e.code === 'DEVICE_MISMATCH')
  await writeLabel(loop, label)
  const dev = await openDevice(loop, { uuid, mode: 'sync' })
  s.defer(() => dev.close())
  assert.equal(dev.uuid, uuid)
  assert.equal(dev.kind, 'block')
  await assert.rejects(
    openDevice(loop, { uuid: 'ffffffff-0000-4000-8000-000000000000' }),
    (e: unknown) => e instanceof VstorError && e.code === 'DEVICE_MISMATCH' && e.message.includes(`carries label ${uuid} (device 'loop')`),
  )
  assert.deepEqual(await probe(loop), { path: loop, kind: 'block', size: SIZE, label })
  const found = await scanLabels(['/dev/loop*'])
  assert.equal(found.get(uuid), loop)
})
