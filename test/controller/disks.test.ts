import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { connect } from '../../src/protocol/connection'
import type { DiskMap, Notes } from '../../src/protocol/messages'
import { MiB, startFixture, type Fixture } from './util'

async function pool(t: Parameters<typeof startFixture>[0]): Promise<Fixture> {
  const f = await startFixture(t)
  await f.call('device.add', { path: f.file('d0.img', 16 * MiB) })
  await f.call('device.add', { path: f.file('d1.img', 16 * MiB) })
  await f.scrubbed()
  return f
}

const plain = { invalid: false, noWrite: false, zero: false, error: false, shared: false }

async function free(f: Fixture): Promise<number[]> {
  return (await f.call('device.list', {})).map((d) => d.free)
}

test('thick disks: largest runs first across devices, then best fit; free space drops; delete returns it', async (t) => {
  const f = await pool(t)
  const d = await f.call('disk.create', { name: 'big', size: 20 * MiB })
  assert.equal(d.size, 20 * MiB)
  assert.equal(d.allocated, 20 * MiB)
  assert.equal(d.thin, false)
  const m = await f.call('disk.map', { name: 'big' })
  assert.deepEqual(m.extents, [
    { offset: 0, length: 15 * MiB, device: 'dev0', deviceOffset: MiB, ...plain },
    { offset: 15 * MiB, length: 5 * MiB, device: 'dev1', deviceOffset: MiB, ...plain },
  ])
  assert.deepEqual(await free(f), [0, 10 * MiB])
  // best fit: the only run that holds 4 MiB is dev1's remainder, right after big's part
  await f.call('disk.create', { name: 'small', size: 3 * MiB + 1 })
  const s = await f.call('disk.map', { name: 'small' })
  assert.equal(s.size, 4 * MiB, 'rounded up to whole units')
  assert.deepEqual(s.extents, [{ offset: 0, length: 4 * MiB, device: 'dev1', deviceOffset: 6 * MiB, ...plain }])
  assert.deepEqual(await free(f), [0, 6 * MiB])
  await f.call('disk.delete', { name: 'big' })
  assert.deepEqual(await free(f), [15 * MiB, 11 * MiB])
  assert.equal(await f.failCode('disk.map', { name: 'big' }), 'NOT_FOUND')
  // restricted to a device
  const r = await f.call('disk.create', { name: 'on1', size: 2 * MiB, devices: ['dev1'] })
  assert.equal(r.allocated, 2 * MiB)
  assert.equal((await f.call('disk.map', { name: 'on1' })).extents[0]?.device, 'dev1')
  assert.equal(await f.failCode('disk.create', { name: 'x', size: MiB, devices: ['nope'] }), 'NOT_FOUND')
})

test('refused creates change nothing: duplicate, bad name, bad size, no space', async (t) => {
  const f = await pool(t)
  await f.call('disk.create', { name: 'a', size: 4 * MiB })
  const before = await f.call('status', {})
  assert.equal(await f.failCode('disk.create', { name: 'a', size: MiB }), 'EXISTS')
  assert.equal(await f.failCode('disk.create', { name: 'bad/name', size: MiB }), 'BAD_NAME')
  assert.match(await f.failCode('disk.create', { name: '', size: MiB }), /BAD_NAME|BAD_REQUEST/)
  assert.match(await f.failCode('disk.create', { name: 'z', size: 0 }), /BAD_SIZE|BAD_REQUEST/)
  assert.match(await f.failCode('disk.create', { name: 'z', size: -5 }), /BAD_SIZE|BAD_REQUEST/)
  assert.equal(await f.failCode('disk.create', { name: 'huge', size: 27 * MiB }), 'NO_SPACE')
  const after = await f.call('status', {})
  assert.deepEqual(after.disks, before.disks)
  assert.deepEqual(after.devices, before.devices)
  assert.equal(after.controller.generation, before.controller.generation)
  // exactly what is left still fits
  await f.call('disk.create', { name: 'rest', size: 26 * MiB })
  assert.deepEqual(await free(f), [0, 0])
})

test('thin disks over-commit: one zero extent, nothing allocated', async (t) => {
  const f = await pool(t)
  const d = await f.call('disk.create', { name: 'thin', size: 2 ** 40, thin: true })
  assert.equal(d.thin, true)
  assert.equal(d.allocated, 0)
  const m = await f.call('disk.map', { name: 'thin' })
  assert.deepEqual(m.extents, [{ offset: 0, length: 2 ** 40, device: null, deviceOffset: null, ...plain, zero: true }])
  assert.deepEqual(await free(f), [15 * MiB, 15 * MiB])
})

test('extent.set splits at edges, discard returns units, clearing zero leaves invalid', async (t) => {
  const f = await pool(t)
  await f.call('disk.create', { name: 'v', size: 20 * MiB })
  let m = await f.call('extent.set', { name: 'v', offset: 2 * MiB, length: 2 * MiB, set: ['no-write'], clear: [] })
  assert.deepEqual(m.extents, [
    { offset: 0, length: 2 * MiB, device: 'dev0', deviceOffset: MiB, ...plain },
    { offset: 2 * MiB, length: 2 * MiB, device: 'dev0', deviceOffset: 3 * MiB, ...plain, noWrite: true },
    { offset: 4 * MiB, length: 11 * MiB, device: 'dev0', deviceOffset: 5 * MiB, ...plain },
    { offset: 15 * MiB, length: 5 * MiB, device: 'dev1', deviceOffset: MiB, ...plain },
  ])
  // clearing merges back into one contiguous extent
  m = await f.call('extent.set', { name: 'v', offset: 2 * MiB, length: 2 * MiB, set: [], clear: ['no-write'] })
  assert.equal(m.extents.length, 2)
  m = await f.call('extent.set', { name: 'v', offset: 16 * MiB, length: 2 * MiB, set: ['zero'], clear: [] })
  assert.deepEqual(m.extents.slice(1), [
    { offset: 15 * MiB, length: MiB, device: 'dev1', deviceOffset: MiB, ...plain },
    { offset: 16 * MiB, length: 2 * MiB, device: null, deviceOffset: null, ...plain, zero: true },
    { offset: 18 * MiB, length: 2 * MiB, device: 'dev1', deviceOffset: 4 * MiB, ...plain },
  ])
  assert.deepEqual(await free(f), [0, 12 * MiB])
  assert.equal((await f.call('disk.list', {}))[0]?.allocated, 18 * MiB)
  m = await f.call('extent.set', { name: 'v', offset: 16 * MiB, length: MiB, set: [], clear: ['zero'] })
  assert.deepEqual(m.extents[2], { offset: 16 * MiB, length: MiB, device: null, deviceOffset: null, ...plain, invalid: true })
  // the discarded units are reusable
  await f.call('disk.create', { name: 'w', size: 12 * MiB })
  assert.deepEqual(await free(f), [0, 0])
})

test('extent.set refuses unaligned, out-of-range and empty requests without a change', async (t) => {
  const f = await pool(t)
  await f.call('disk.create', { name: 'v', size: 8 * MiB })
  const gen = (await f.call('status', {})).controller.generation
  assert.equal(await f.failCode('extent.set', { name: 'v', offset: 4096, length: MiB, set: ['error'], clear: [] }), 'BAD_ARGUMENT')
  assert.equal(await f.failCode('extent.set', { name: 'v', offset: 0, length: MiB + 1, set: ['error'], clear: [] }), 'BAD_ARGUMENT')
  assert.equal(await f.failCode('extent.set', { name: 'v', offset: 7 * MiB, length: 2 * MiB, set: ['error'], clear: [] }), 'BAD_ARGUMENT')
  assert.match(await f.failCode('extent.set', { name: 'v', offset: 0, length: MiB, set: [], clear: [] }), /BAD_ARGUMENT|BAD_REQUEST/)
  assert.match(
    await f.failCode('extent.set', { name: 'v', offset: 0, length: MiB, set: ['zero'], clear: ['zero'] }),
    /BAD_ARGUMENT|BAD_REQUEST/,
  )
  assert.equal(await f.failCode('extent.set', { name: 'nope', offset: 0, length: MiB, set: ['error'], clear: [] }), 'NOT_FOUND')
  assert.equal((await f.call('status', {})).controller.generation, gen)
  assert.equal((await f.call('disk.map', { name: 'v' })).extents.length, 1)
})

test('a restart keeps devices, disks, maps and the generation', async (t) => {
  const f = await pool(t)
  await f.call('disk.create', { name: 'a', size: 20 * MiB })
  await f.call('disk.create', { name: 't', size: 64 * MiB, thin: true })
  await f.call('extent.set', { name: 'a', offset: 3 * MiB, length: 5 * MiB, set: ['no-write'], clear: [] })
  await f.call('extent.set', { name: 'a', offset: 5 * MiB, length: MiB, set: ['zero'], clear: [] })
  await f.call('extent.set', { name: 'a', offset: 16 * MiB, length: 3 * MiB, set: ['error'], clear: [] })
  await f.call('extent.set', { name: 't', offset: 8 * MiB, length: 8 * MiB, set: ['invalid'], clear: ['zero'] })
  await f.scrubbed()
  const before = await f.call('status', {})
  const maps: DiskMap[] = [await f.call('disk.map', { name: 'a' }), await f.call('disk.map', { name: 't' })]
  await f.restart()
  const after = await f.call('status', {})
  assert.equal(after.controller.id, before.controller.id)
  assert.equal(after.controller.generation, before.controller.generation)
  assert.deepEqual(after.devices, before.devices)
  assert.deepEqual(after.disks, before.disks)
  assert.deepEqual([await f.call('disk.map', { name: 'a' }), await f.call('disk.map', { name: 't' })], maps)
})

test('thick disks map only space that reads zeros: stale device bytes never show; --zero reports progress; thin refuses it', async (t) => {
  const f = await startFixture(t)
  const paths = [f.file('z0.img', 16 * MiB), f.file('z1.img', 16 * MiB)]
  // what a deleted disk (or another use) left behind: 0xAA over both data areas, before the devices join the pool
  for (const p of paths) {
    const fd = fs.openSync(p, 'r+')
    fs.writeSync(fd, Buffer.alloc(15 * MiB, 0xaa), 0, 15 * MiB, MiB)
    fs.closeSync(fd)
  }
  for (const p of paths) await f.call('device.add', { path: p })
  const bytes = (p: string, at: number, length: number) => {
    const fd = fs.openSync(p, 'r')
    try {
      const b = Buffer.alloc(length)
      fs.readSync(fd, b, 0, length, at)
      return b
    } finally {
      fs.closeSync(fd)
    }
  }

  const { conn } = await connect(f.socket, { role: 'cli' })
  f.onCleanup(() => conn.close())
  const notes: Notes['progress'][] = []
  conn.onNote((method, params) => method === 'progress' && notes.push(params as Notes['progress']))

  const plain = await f.call('disk.create', { name: 'plain', size: 6 * MiB }) // another connection: its notes are not counted
  const d = await conn.call('disk.create', { name: 'clean', size: 20 * MiB, zero: true })
  assert.equal(d.allocated, 20 * MiB)
  for (const name of ['plain', 'clean']) {
    const m = await f.call('disk.map', { name })
    for (const e of m.extents) {
      const p = paths[Number((e.device ?? '').replace('dev', ''))] as string
      assert.ok(
        bytes(p, e.deviceOffset as number, e.length).equals(Buffer.alloc(e.length)),
        `${name}: ${e.device} is zero at ${e.deviceOffset}`,
      )
    }
  }
  assert.equal(plain.allocated, 6 * MiB)
  assert.ok(notes.length >= 2, 'a first and a final progress note')
  assert.ok(notes.every((n) => n.op === 'zero' && n.total === 20 * MiB))
  assert.ok(
    notes.every((n, i) => i === 0 || n.done >= (notes[i - 1] as Notes['progress']).done),
    'done never goes back',
  )
  assert.deepEqual(notes.at(-1), { op: 'zero', done: 20 * MiB, total: 20 * MiB })

  assert.equal(await f.failCode('disk.create', { name: 'thin', size: MiB, thin: true, zero: true }), 'BAD_ARGUMENT')
  assert.equal(await f.failCode('disk.map', { name: 'thin' }), 'NOT_FOUND')
})
