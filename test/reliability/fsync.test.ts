// Issue 8: fsync is durable for every write acknowledged before it, on any fd
// of the disk, with power loss modelled by a store that drops what no
// fdatasync covered (powerstore.ts). Two callers on one DiskIO are two fds.
//
// Invariants checked: at the moment an fsync returns 0, every write that
// completed before that fsync was called (on either fd) is in the durable
// image, also when the fsync arrived while an earlier fsync's round was in
// flight (the old bug: it found nothing dirty and returned at once); an fsync
// after a lazily committed change this agent did not ask for (another agent's
// allocation) waits for the metadata barrier before it returns.

import assert from 'node:assert/strict'
import os from 'node:os'
import test from 'node:test'
import type { DiskIO } from '../../src/agent/io'
import { AgentState } from '../../src/agent/state'
import { Flag, NO_DEVICE, Table, type Extent } from '../../src/table/table'
import { PowerStore } from './powerstore'
import { rng } from './writer'
import { figures, report, scale } from './writers'

const E = os.constants.errno
const MiB = 2 ** 20

interface Rig {
  state: AgentState
  disk: DiskIO
  store: PowerStore
  metaSyncs: number
  /** While set, metadata barriers wait for it. */
  metaGate: Promise<void> | null
}

async function rig(extents: Extent[], size = 4 * MiB): Promise<Rig> {
  const store = new PowerStore(16 * MiB)
  const r: Rig = { store, metaSyncs: 0, metaGate: null } as unknown as Rig
  r.state = new AgentState({
    fault: async () => ({ action: 'deny' }),
    metaSync: async () => {
      r.metaSyncs++
      await r.metaGate
      return r.state.generation
    },
    open: async () => store,
  })
  const payload = Table.encode(extents)
  await r.state.load(
    {
      generation: 1,
      durable: 1,
      devices: [{ id: 1, name: 'a', uuid: 'uuid-a' }],
      disks: [{ name: 'd', uid: 'uid-d', size, generation: 1, bytes: payload.length }],
    },
    payload,
  )
  r.disk = r.state.disks.get('d')!
  return r
}

const mapped = (size = 4 * MiB): Extent[] => [{ vstart: 0, length: size, device: 1, pstart: MiB, flags: 0 }]
const write = (d: DiskIO, pos: number, data: Buffer): Promise<number> => new Promise((res) => d.write(data, data.length, pos, res))
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}
/** fsync; `check` runs inside the completion callback, before anything else can happen. */
const fsync = (d: DiskIO, check: () => void = () => {}): Promise<number> =>
  new Promise((res) =>
    d.fsync((n) => {
      check()
      res(n)
    }),
  )
const durableHas = (s: PowerStore, devPos: number, data: Buffer): boolean => s.durable.subarray(devPos, devPos + data.length).equals(data)

test('a second fsync (another fd) arriving while the first round is in flight waits for it and covers its own write', async () => {
  const r = await rig(mapped())
  const x = Buffer.alloc(4096, 0x11)
  const y = Buffer.alloc(4096, 0x22)
  assert.equal(await write(r.disk, 0, x), 4096) // fd A
  r.store.holdSyncs = true
  let aDone = false
  let bDone = false
  const a = fsync(r.disk, () => {
    aDone = true
    assert.ok(durableHas(r.store, MiB, x), "fd A's fsync returned before its write was durable")
  })
  await turns(5)
  assert.equal(r.store.heldSyncs, 1, 'the first round is in flight')
  assert.equal(await write(r.disk, 8192, y), 4096) // fd B, after round 1 took its snapshot
  const b = fsync(r.disk, () => {
    bDone = true
    assert.ok(durableHas(r.store, MiB, x) && durableHas(r.store, MiB + 8192, y), "fd B's fsync returned before its write was durable")
  })
  await turns(20)
  assert.deepEqual([aDone, bDone], [false, false], 'no fsync returns while the round covering it is held')
  r.store.release()
  assert.equal(await a, 0)
  await turns(5)
  r.store.release() // the second round
  assert.equal(await b, 0)
  r.store.powerLoss()
  assert.ok(durableHas(r.store, MiB, x) && durableHas(r.store, MiB + 8192, y))
})

test('an fsync whose writes all completed before a round in flight waits for that round (no early 0)', async () => {
  const r = await rig(mapped())
  const x = Buffer.alloc(4096, 0x33)
  const y = Buffer.alloc(4096, 0x44)
  await write(r.disk, 0, x) // fd A
  await write(r.disk, 4096, y) // fd B
  r.store.holdSyncs = true
  const a = fsync(r.disk)
  await turns(5)
  let bDone = false
  const b = fsync(r.disk, () => {
    bDone = true
    assert.ok(durableHas(r.store, MiB + 4096, y), "fd B's write was not durable when its fsync returned")
  })
  await turns(20)
  assert.equal(bDone, false, 'the second fsync returned while the round holding its write was in flight')
  r.store.release()
  assert.deepEqual(await Promise.all([a, b]), [0, 0])
})

test(`two fds writing and fsyncing at random: each fsync returns with every earlier write durable (${scale(100, 3000)} runs)`, async (t) => {
  const runs = scale(100, 3000)
  let fsyncs = 0
  let writes = 0
  for (let run = 1; run <= runs; run++) {
    const next = rng(run * 7919)
    const r = await rig(mapped())
    r.store.writeTurns = () => Math.floor(next() * 4)
    const completed: { pos: number; data: Buffer }[] = []
    let slot = 0
    const fd = async (seed: number): Promise<void> => {
      for (let op = 0; op < 12; op++) {
        if (next() < 0.35) {
          // what this fsync must cover: every write completed (acked) before the call
          const due = [...completed]
          const res = await fsync(r.disk, () => {
            for (const w of due) {
              assert.ok(durableHas(r.store, MiB + w.pos, w.data), `run ${run}: write at ${w.pos} not durable when fsync returned`)
            }
          })
          assert.equal(res, 0)
          fsyncs++
        } else {
          const pos = slot++ * 4096
          const data = Buffer.alloc(4096, ((seed * 31 + op) & 0xff) | 1)
          assert.equal(await write(r.disk, pos, data), 4096)
          completed.push({ pos, data })
          writes++
        }
        await turns(Math.floor(next() * 3))
      }
    }
    await Promise.all([fd(1), fd(2)])
  }
  assert.ok(fsyncs > runs, 'the runs did fsync')
  report(t, { ...figures('two fds: concurrent fsyncs, power loss modelled'), cycles: runs, writes, fsyncs })
})

test("an fsync after another agent's lazy allocation asks for the metadata barrier and returns only after it", async () => {
  const zero: Extent = { vstart: MiB, length: 3 * MiB, device: NO_DEVICE, pstart: 0, flags: Flag.Zero }
  const r = await rig([{ vstart: 0, length: MiB, device: 1, pstart: MiB, flags: 0 }, zero])
  // Another agent's first write allocated [1M, 2M): the controller committed it lazily and pushed it here.
  const c = r.disk.table.plan(MiB, 2 * MiB, [{ vstart: MiB, length: MiB, device: 1, pstart: 4 * MiB, flags: 0 }])
  await r.state.update(
    { generation: 2, disk: 'd', uid: 'uid-d', size: 4 * MiB, start: c.start, end: c.end, lazy: true },
    Table.encode(c.extents),
  )
  // This agent writes there without a fault of its own (the unit is mapped) …
  const x = Buffer.alloc(4096, 0x55)
  assert.equal(await write(r.disk, MiB, x), 4096)
  let release!: () => void
  r.metaGate = new Promise((res) => (release = res))
  let done = false
  const f = fsync(r.disk, () => (done = true))
  await turns(20)
  // … and its fsync must make that table entry durable too, before it returns.
  assert.equal(r.metaSyncs, 1, 'the fsync did not ask for the metadata barrier')
  assert.equal(done, false, 'the fsync returned before the barrier')
  release()
  assert.equal(await f, 0)
  assert.ok(durableHas(r.store, 4 * MiB, x))
  // Once durable, the next fsync needs no barrier.
  assert.equal(await write(r.disk, MiB + 4096, x), 4096)
  assert.equal(await fsync(r.disk), 0)
  assert.equal(r.metaSyncs, 1)
})

test('an fsync whose barrier fails is EIO, and the next one asks again', async () => {
  const r = await rig(mapped())
  const c = r.disk.table.plan(0, MiB, [{ vstart: 0, length: MiB, device: 1, pstart: 8 * MiB, flags: 0 }])
  await r.state.update(
    { generation: 2, disk: 'd', uid: 'uid-d', size: 4 * MiB, start: c.start, end: c.end, lazy: true },
    Table.encode(c.extents),
  )
  await write(r.disk, 0, Buffer.alloc(512, 1))
  r.metaGate = Promise.reject(new Error('controller unreachable'))
  r.metaGate.catch(() => {})
  assert.equal(await fsync(r.disk), -E.EIO)
  r.metaGate = null
  assert.equal(await fsync(r.disk), 0)
  assert.equal(r.metaSyncs, 2)
})
