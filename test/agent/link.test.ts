// The controller link: initial load, agent.open notes, outage and reconnect, fault timeout.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { DiskIO } from '../../src/agent/io'
import { Link } from '../../src/agent/link'
import { AgentState } from '../../src/agent/state'
import type { Fault } from '../../src/protocol/messages'
import { MiB } from '../../src/size'
import { Flag, NO_DEVICE } from '../../src/table/table'
import { FakeController, type FakeDisk } from './fakectl'
import { MemStore } from './memstore'
import { waitFor } from '../controller/util'

const E = os.constants.errno
const ext = (vstart: number, length: number, device: number, pstart: number, flags = 0) => ({ vstart, length, device, pstart, flags })
const disks = (): FakeDisk[] => [{ name: 'd', size: 2 * MiB, extents: [ext(0, MiB, 1, MiB), ext(MiB, MiB, NO_DEVICE, 0, Flag.Zero)] }]
const devices = [{ id: 1, name: 'a', uuid: 'uuid-a' }]

async function rig(t: import('node:test').TestContext, faultTimeoutMs: number) {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-link-'))
  const socket = path.join(dir, 'vstor.sock')
  const store = new MemStore(8 * MiB)
  const link = new Link({
    socket,
    agentId: 'a1',
    mountpoint: '/mnt/x',
    faultTimeoutMs,
    loadWaitMs: 500,
    served: () => DiskIO.served,
    written: () => DiskIO.written,
  })
  const state = new AgentState({ fault: (f) => link.fault(f), open: async () => store })
  const ctls: FakeController[] = []
  const controller = async () => {
    const c = new FakeController(socket, devices, disks())
    await c.start()
    ctls.push(c)
    return c
  }
  t.after(async () => {
    link.stop()
    for (const c of ctls) await c.server.close()
    await fs.promises.rm(dir, { recursive: true, force: true })
  })
  const write = (pos: number, len: number) => new Promise<number>((r) => state.disks.get('d')!.write(Buffer.alloc(len, 7), len, pos, r))
  return { socket, store, link, state, controller, write }
}

test('start fails with CONTROLLER_UNREACHABLE when nothing listens', async (t) => {
  const r = await rig(t, 1000)
  await assert.rejects(r.link.start(r.state), { code: 'CONTROLLER_UNREACHABLE' })
})

test('start loads the table; open disks are announced (an empty list first: a new process has none open)', async (t) => {
  const r = await rig(t, 1000)
  const c = await r.controller()
  await r.link.start(r.state)
  assert.equal(r.state.generation, 1)
  assert.deepEqual([...r.state.disks.keys()], ['d'])
  r.link.setOpen(['d'])
  await waitFor(() => c.notes.length === 2, 'the agent.open notes')
  assert.deepEqual(c.notes, [
    ['agent.open', { disks: [] }],
    ['agent.open', { disks: ['d'] }],
  ])
})

test('outage: mapped I/O goes on, a fault waits for the reconnect, which reloads the table', async (t) => {
  const r = await rig(t, 10_000)
  const c1 = await r.controller()
  await r.link.start(r.state)
  r.link.setOpen(['d'])
  await c1.server.close()
  await new Promise((res) => setTimeout(res, 50))
  assert.equal(r.link.connected, false)
  assert.equal(await r.write(0, 4096), 4096, 'mapped writes do not need the controller')
  // A first write into the zero half waits for the controller to come back.
  const pending = r.write(MiB, 4096)
  await new Promise((res) => setTimeout(res, 300))
  const c2 = new FakeController(r.socket, devices, disks())
  c2.generation = 5 // it changed while we were away: the agent must reload
  c2.onFault = async (f: Fault) => {
    await c2.update('d', f.offset, f.offset + f.length, [ext(f.offset, f.length, 1, 3 * MiB)], true)
    return { action: 'retry' }
  }
  await c2.start()
  try {
    assert.equal(await pending, 4096)
    assert.equal(c2.hellos, 1)
    assert.ok(r.state.generation >= 5)
    assert.deepEqual(c2.notes[0], ['agent.open', { disks: ['d'] }], 'open disks re-announced after reconnect')
    assert.ok(r.store.data.subarray(3 * MiB, 3 * MiB + 4096).every((b) => b === 7))
  } finally {
    await c2.server.close()
  }
})

test('a fault with no controller for faultTimeoutMs fails the I/O with EIO', async (t) => {
  const r = await rig(t, 300)
  const c1 = await r.controller()
  await r.link.start(r.state)
  await c1.server.close()
  assert.equal(await r.write(MiB, 4096), -E.EIO)
})

test('a table.update ack carries the requests served and the writes finished so far (a background job tells idle from busy, and written from not)', async (t) => {
  const r = await rig(t, 1000)
  const c = await r.controller()
  await r.link.start(r.state)
  const first = await c.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])
  assert.equal(typeof first.served, 'number')
  const idle = await c.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])
  assert.equal(idle.served, first.served, 'no I/O between the two updates')
  assert.equal(await r.write(0, 4096), 4096)
  await new Promise<number>((res) => r.state.disks.get('d')!.read(Buffer.alloc(4096), 4096, 0, res))
  const busy = await c.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])
  assert.equal(busy.served, first.served! + 2, 'one write and one read')
  assert.equal(typeof first.written, 'number')
  assert.equal(idle.written, first.written)
  assert.equal(busy.written, first.written! + 1, 'the write, not the read')
})
