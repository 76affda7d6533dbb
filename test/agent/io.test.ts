import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AgentState } from '../../src/agent/state'
import { Flag, NO_DEVICE, Table } from '../../src/table/table'
import { E, MiB, ext, harness, pattern, zero } from './harness'
import { MemStore } from './memstore'

// Layout: [0,1M) dev1@1M | [1M,2M) dev2@1M | [2M,3M) Zero | [3M,4M) dev1@2M
const layout = () => [ext(0, MiB, 1, MiB), ext(MiB, MiB, 2, MiB), zero(2 * MiB, MiB), ext(3 * MiB, MiB, 1, 2 * MiB)]

test('read and write across an extent edge that is also a device edge', async () => {
  const h = await harness(4 * MiB, layout())
  const data = pattern(8192, 3)
  assert.equal(await h.write(MiB - 4096, data), 8192)
  assert.deepEqual(h.stores.get(1)!.data.subarray(2 * MiB - 4096, 2 * MiB), data.subarray(0, 4096))
  assert.deepEqual(h.stores.get(2)!.data.subarray(MiB, MiB + 4096), data.subarray(4096))
  const r = await h.read(MiB - 4096, 8192)
  assert.equal(r.res, 8192)
  assert.deepEqual(r.buf, data)
})

test('zero extents read zeros without device I/O', async () => {
  const h = await harness(4 * MiB, layout())
  const before = h.stores.get(1)!.reads + h.stores.get(2)!.reads
  const r = await h.read(2 * MiB + 100, 4096)
  assert.equal(r.res, 4096)
  assert.ok(r.buf.every((b) => b === 0))
  assert.equal(h.stores.get(1)!.reads + h.stores.get(2)!.reads, before)
})

test('reads clip at the end; writes past the end are ENOSPC, straddling writes are short', async () => {
  const h = await harness(4 * MiB, layout())
  assert.equal((await h.read(4 * MiB - 100, 4096)).res, 100)
  assert.equal((await h.read(4 * MiB, 4096)).res, 0)
  assert.equal(await h.write(4 * MiB, pattern(512, 1)), -E.ENOSPC)
  assert.equal(await h.write(4 * MiB - 512, pattern(4096, 1)), 512)
  assert.deepEqual(h.stores.get(1)!.data.subarray(3 * MiB - 512, 3 * MiB), pattern(512, 1))
})

test('invalid: EIO for reads and writes, an unmapped fault, neighbours still work', async () => {
  const h = await harness(4 * MiB, [ext(0, MiB, 1, MiB), ext(MiB, MiB, NO_DEVICE, 0, Flag.Invalid), ext(2 * MiB, 2 * MiB, 2, MiB)])
  assert.equal((await h.read(MiB, 512)).res, -E.EIO)
  assert.equal(await h.write(MiB + 512, pattern(512, 2)), -E.EIO)
  assert.deepEqual(
    h.faults.map((f) => [f.kind, f.offset, f.length]),
    [
      ['unmapped', MiB, 512],
      ['unmapped', MiB + 512, 512],
    ],
  )
  assert.equal(await h.write(MiB - 512, pattern(512, 2)), 512)
  assert.equal((await h.read(2 * MiB, 512)).res, 512)
})

test('error: EIO for reads and writes', async () => {
  const h = await harness(2 * MiB, [ext(0, MiB, 1, MiB, Flag.Error), ext(MiB, MiB, 1, 2 * MiB)])
  assert.equal((await h.read(0, 512)).res, -E.EIO)
  assert.equal(await h.write(0, pattern(512, 2)), -E.EIO)
  assert.equal(await h.write(MiB, pattern(512, 2)), 512)
})

test('no-write: reads pass, writes fault; deny gives EROFS, retry after the change succeeds', async () => {
  const h = await harness(2 * MiB, [ext(0, MiB, 1, MiB, Flag.NoWrite), ext(MiB, MiB, 1, 2 * MiB)])
  h.stores.get(1)!.data.fill(0x11, MiB, 2 * MiB)
  const r = await h.read(0, 4096)
  assert.equal(r.res, 4096)
  assert.ok(r.buf.every((b) => b === 0x11))
  assert.equal(await h.write(0, pattern(4096, 5)), -E.EROFS)
  assert.equal(h.faults[0]?.kind, 'write-protected')
  assert.equal(h.stores.get(1)!.writes, 0)
  h.onFault = async (f) => {
    await h.change(0, MiB, [ext(0, MiB, 1, MiB)])
    return { action: f.kind === 'write-protected' ? 'retry' : 'deny' }
  }
  assert.equal(await h.write(0, pattern(4096, 5)), 4096)
  assert.deepEqual(h.stores.get(1)!.data.subarray(MiB, MiB + 4096), pattern(4096, 5))
})

test('zero write: unallocated fault for whole units; after the update the retry lands, the rest of the unit reads zeros', async () => {
  const h = await harness(4 * MiB, [ext(0, MiB, 1, MiB), zero(MiB, 3 * MiB)])
  h.stores.get(2)!.data.fill(0xaa) // stale bytes that must never show
  h.onFault = (f) => h.allocate(f, 2, 4 * MiB)
  assert.equal(await h.write(MiB + 4096, pattern(4096, 9)), 4096)
  assert.deepEqual(
    h.faults.map((f) => [f.kind, f.offset, f.length]),
    [['unallocated', MiB, MiB]],
  )
  const r = await h.read(MiB, MiB)
  assert.ok(r.buf.subarray(0, 4096).every((b) => b === 0))
  assert.deepEqual(r.buf.subarray(4096, 8192), pattern(4096, 9))
  assert.ok(
    r.buf.subarray(8192).every((b) => b === 0),
    'rest of the unit reads zeros, not stale 0xAA',
  )
})

test('zero write: pool full (fail) gives ENOSPC, unreachable controller gives EIO', async () => {
  const h = await harness(2 * MiB, [zero(0, 2 * MiB)])
  h.onFault = async () => ({ action: 'fail', reason: 'no space' })
  assert.equal(await h.write(0, pattern(512, 1)), -E.ENOSPC)
  h.onFault = async () => {
    throw new Error('timeout')
  }
  assert.equal(await h.write(0, pattern(512, 1)), -E.EIO)
})

test('concurrent first writes into one zero unit make one fault and all data lands', async () => {
  const h = await harness(2 * MiB, [zero(0, 2 * MiB)])
  let calls = 0
  h.onFault = async (f) => {
    calls++
    await new Promise((r) => setTimeout(r, 20))
    return h.allocate(f, 1, MiB)
  }
  const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((k) => h.write(k * 65536, pattern(65536, k))))
  assert.deepEqual(results, Array(8).fill(65536))
  assert.equal(calls, 1)
  for (let k = 0; k < 8; k++) assert.deepEqual((await h.read(k * 65536, 65536)).buf, pattern(65536, k))
})

test('a device failure gives EIO and a device-error fault; other extents keep working', async () => {
  const h = await harness(2 * MiB, [ext(0, MiB, 1, MiB), ext(MiB, MiB, 2, MiB)])
  h.stores.get(2)!.failWrites = [MiB + 8192, MiB + 12288]
  assert.equal(await h.write(MiB - 4096, pattern(16384, 1)), -E.EIO)
  const f = h.faults.find((x) => x.kind === 'device-error')
  assert.ok(f)
  assert.deepEqual([f.device, f.offset, f.length, f.errno], [2, MiB, 12288, 'EIO'])
  assert.equal(await h.write(0, pattern(4096, 2)), 4096)
  assert.equal(await h.write(MiB + MiB / 2, pattern(4096, 2)), 4096)
})

test('a change under load never splits a request between old and new mappings', async () => {
  // [0,1M) dev1@1M, [1M,2M) dev2@1M; the change moves [0,2M) to dev2@4M (one extent).
  const h = await harness(2 * MiB, [ext(0, MiB, 1, MiB), ext(MiB, MiB, 2, MiB)])
  for (const s of h.stores.values()) s.delayMs = 10
  const req = (k: number) => h.write(MiB - 32768, Buffer.alloc(65536, k))
  const first = [1, 2, 3, 4, 5].map(req)
  const changed = h.change(0, 2 * MiB, [ext(0, 2 * MiB, 2, 4 * MiB)])
  const parked = [6, 7, 8, 9, 10].map(req)
  assert.equal(h.state.disks.get('d')!.gate.waiting, 5, 'requests after the block are parked')
  await changed
  assert.deepEqual(await Promise.all([...first, ...parked]), Array(10).fill(65536))
  const s1 = h.stores.get(1)!
  const s2 = h.stores.get(2)!
  // Old mapping: two halves at dev1 2M-32K and dev2 1M; new: one write at dev2 5M-32K.
  const oldHalves = s1.log.filter(([p]) => p === 2 * MiB - 32768).length
  const oldSeconds = s2.log.filter(([p]) => p === MiB).length
  const fresh = s2.log.filter(([p, l]) => p === 5 * MiB - 32768 && l === 65536).length
  assert.deepEqual([oldHalves, oldSeconds, fresh], [5, 5, 5])
  // The last old request and the last new request each wrote both their halves with one value.
  const a = s1.data[2 * MiB - 1]
  assert.equal(s2.data[MiB], a)
  assert.ok(s2.data.subarray(5 * MiB - 32768, 5 * MiB + 32768).every((b) => b === s2.data[5 * MiB]))
  assert.ok(s2.data[5 * MiB]! >= 6)
})

test('fsync syncs the devices written since the last fsync', async () => {
  const h = await harness(2 * MiB, [ext(0, MiB, 1, MiB), ext(MiB, MiB, 2, MiB)])
  await h.write(0, pattern(512, 1))
  const res = await new Promise((r) => h.state.disks.get('d')!.fsync(r))
  assert.equal(res, 0)
  assert.deepEqual([h.stores.get(1)!.syncs, h.stores.get(2)!.syncs], [1, 0])
})

test('fsync after a first write asks for a metadata barrier once; a failed barrier is EIO and asked again', async () => {
  const h = await harness(4 * MiB, [ext(0, MiB, 1, MiB), zero(MiB, 3 * MiB)])
  h.onFault = (f) => h.allocate(f, 2, 4 * MiB)
  const fsync = () => new Promise((r) => h.state.disks.get('d')!.fsync(r))
  await h.write(0, pattern(512, 1)) // mapped: no allocation, no barrier
  assert.equal(await fsync(), 0)
  assert.equal(h.metaSyncs, 0)
  assert.equal(await h.write(MiB, pattern(4096, 2)), 4096) // allocates
  h.metaSyncFails = true
  assert.equal(await fsync(), -E.EIO, 'the allocation is not known durable: fsync must fail')
  assert.equal(h.stores.get(2)!.syncs, 0, 'no device sync is reported durable before the metadata is')
  h.metaSyncFails = false
  assert.equal(await fsync(), 0)
  assert.equal(h.metaSyncs, 2)
  assert.equal(h.stores.get(2)!.syncs, 1)
  assert.equal(await fsync(), 0)
  assert.equal(h.metaSyncs, 2, 'no barrier without a new allocation')
})

test('a removed disk fails further I/O with EIO', async () => {
  const h = await harness(2 * MiB, [ext(0, 2 * MiB, 1, MiB)])
  const disk = h.state.disks.get('d')!
  await h.state.drop({ generation: 5, disk: 'd', uid: 'uid-d' })
  assert.equal(h.state.disks.has('d'), false)
  const res = await new Promise((r) => disk.read(Buffer.alloc(512), 512, 0, r))
  assert.equal(res, -E.EIO)
})

test('a device the agent cannot open: the load still succeeds, I/O there is EIO without a fault', async () => {
  const store = new MemStore(8 * MiB)
  const logged: string[] = []
  const faults: string[] = []
  const state = new AgentState({
    fault: async (f) => (faults.push(f.kind), { action: 'deny' }),
    open: async (d) => (d.id === 1 ? store : Promise.reject(new Error('ENOENT: gone'))),
    log: (m) => logged.push(m),
  })
  const payload = Table.encode([ext(0, MiB, 1, MiB), ext(MiB, MiB, 2, MiB)])
  const devices = [
    { id: 1, name: 'a', uuid: 'uuid-a' },
    { id: 2, name: 'b', uuid: 'uuid-b' },
  ]
  await state.load(
    { generation: 3, durable: 3, devices, disks: [{ name: 'd', uid: 'uid-d', size: 2 * MiB, generation: 3, bytes: payload.length }] },
    payload,
  )
  const d = state.disks.get('d')!
  const io = (pos: number) => new Promise((r) => d.read(Buffer.alloc(4096), 4096, pos, r))
  assert.equal(await io(0), 4096)
  assert.equal(await io(MiB), -E.EIO)
  assert.equal(await io(MiB - 2048), -E.EIO, 'a request touching the missing device fails whole')
  assert.deepEqual(faults, [])
  assert.match(logged.join('\n'), /cannot open device b/)
})
