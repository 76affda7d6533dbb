import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DiskMap } from '../../src/protocol/messages'
import { Flag, NO_DEVICE, type Table } from '../../src/table/table'
import { FakeAgent } from './agent'
import { MiB, startFixture, waitFor, type Fixture } from './util'

/** The agent's copy, as the controller's names/flags would show it. */
function sameAsMap(t: Table | undefined, m: DiskMap, f: Map<number, string>): void {
  assert.ok(t, `agent has no table for ${m.name}`)
  assert.equal(t.size, m.size)
  assert.deepEqual(
    t.all().map((e) => ({
      offset: e.vstart,
      length: e.length,
      device: e.device === NO_DEVICE ? null : (f.get(e.device) ?? '?'),
      deviceOffset: e.device === NO_DEVICE ? null : e.pstart,
      invalid: (e.flags & Flag.Invalid) !== 0,
      noWrite: (e.flags & Flag.NoWrite) !== 0,
      zero: (e.flags & Flag.Zero) !== 0,
      error: (e.flags & Flag.Error) !== 0,
      shared: false, // no snapshots here
    })),
    m.extents,
  )
}

async function devNames(a: FakeAgent): Promise<Map<number, string>> {
  const load = [...a.pushes].reverse().find((p) => Array.isArray(p.params.devices))
  return new Map(((load?.params.devices ?? []) as { id: number; name: string }[]).map((d) => [d.id, d.name]))
}

async function setup(t: Parameters<typeof startFixture>[0], opts = {}): Promise<{ f: Fixture; a: FakeAgent }> {
  const f = await startFixture(t, opts)
  await f.call('device.add', { path: f.file('d0.img', 16 * MiB) })
  await f.call('disk.create', { name: 'thick', size: 4 * MiB })
  const a = await FakeAgent.connect(f.socket)
  f.onCleanup(() => a.close())
  await waitFor(() => a.count('table.load') === 1, 'the first table.load')
  return { f, a }
}

test('an agent behind gets a full table.load on hello, then every change is pushed in order', async (t) => {
  const { f, a } = await setup(t)
  let st = await f.call('status', {})
  assert.equal(a.generation, st.controller.generation)
  sameAsMap(a.tables.get('thick'), await f.call('disk.map', { name: 'thick' }), await devNames(a))
  await waitFor(() => a.events.length > 0, 'ack')
  st = await f.call('status', {})
  assert.equal(st.agents.length, 1)
  assert.equal(st.agents[0]?.id, 'agent-1')
  assert.equal(st.agents[0]?.connected, true)
  assert.equal(st.agents[0]?.generation, st.controller.generation)
  assert.ok(st.agents[0]?.refreshedAt)

  await f.call('disk.create', { name: 'thin', size: 32 * MiB, thin: true })
  assert.equal(a.count('disk.add'), 1, 'disk.add is acked before disk.create returns')
  await f.call('extent.set', { name: 'thick', offset: MiB, length: MiB, set: ['no-write'], clear: [] })
  assert.equal(a.count('table.update'), 1)
  const names = await devNames(a)
  sameAsMap(a.tables.get('thick'), await f.call('disk.map', { name: 'thick' }), names)
  sameAsMap(a.tables.get('thin'), await f.call('disk.map', { name: 'thin' }), names)
  await f.call('disk.delete', { name: 'thin' })
  assert.equal(a.tables.has('thin'), false)
  assert.equal(a.generation, (await f.call('status', {})).controller.generation)
})

test('an agent process reconnecting at the current generation gets no load; agent.sync reports the generation', async (t) => {
  const { f, a } = await setup(t)
  const gen = (await f.call('status', {})).controller.generation
  a.close()
  const b = await FakeAgent.connect(f.socket, 'agent-1', gen, a.epoch, a.boot)
  f.onCleanup(() => b.close())
  assert.deepEqual(await b.conn.call('agent.sync', { generation: gen }), { generation: gen })
  assert.equal(b.count('table.load'), 0)
  // same id reconnected: one entry in status
  assert.equal((await f.call('status', {})).agents.length, 1)
  // a CLI connection cannot send faults
  assert.match(
    await f.failCode('fault' as never, { disk: 'thick', kind: 'unmapped', offset: 0, length: 1, generation: 0 } as never),
    /BAD_REQUEST/,
  )
})

test('periodic refresh replaces the agent copy even when nothing changed', async (t) => {
  const { a } = await setup(t, { refreshIntervalMs: 200 })
  await waitFor(() => a.count('table.load') >= 3, 'intermittent table.load')
})

test('disk.delete is refused while an agent has the disk open, unless forced', async (t) => {
  const { f, a } = await setup(t)
  a.conn.notify('agent.open', { disks: ['thick'] })
  await a.conn.call('agent.sync', { generation: a.generation }) // frames are handled in order: the note is in
  assert.equal(await f.failCode('disk.delete', { name: 'thick' }), 'DISK_OPEN')
  assert.deepEqual((await f.call('disk.list', {}))[0]?.openBy, ['agent-1'])
  await f.call('disk.delete', { name: 'thick', force: true })
  assert.equal(a.tables.has('thick'), false)
})

test('a restarted controller is another boot: an agent at the same generation still gets a full load', async (t) => {
  const { f, a } = await setup(t)
  const gen = (await f.call('status', {})).controller.generation
  a.close()
  await f.restart()
  const b = await FakeAgent.connect(f.socket, 'agent-1', gen, a.epoch, a.boot)
  f.onCleanup(() => b.close())
  assert.ok(b.boot > a.boot, 'the boot number rose')
  await waitFor(() => b.count('table.load') === 1, 'a full load despite the equal generation')
})
