import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FakeAgent } from './agent'
import { MiB, startFixture, waitFor } from './util'

async function setup(t: Parameters<typeof startFixture>[0], opts = {}, devSize = 16 * MiB) {
  const f = await startFixture(t, opts)
  await f.call('device.add', { path: f.file('d0.img', devSize) })
  await f.call('disk.create', { name: 'thin', size: 64 * MiB, thin: true })
  const a = await FakeAgent.connect(f.socket)
  f.onCleanup(() => a.close())
  await waitFor(() => a.count('table.load') === 1, 'the first table.load')
  return { f, a }
}

test('concurrent unallocated faults on one unit make one allocation; retry comes after the (lazy) update is acked', async (t) => {
  const { f, a } = await setup(t)
  a.updateDelayMs = 100
  const offs = [3 * MiB, 3 * MiB + 4096, 3 * MiB + 65536, 4 * MiB - 4096]
  const replies = await Promise.all(offs.map((o) => a.fault({ disk: 'thin', kind: 'unallocated', offset: o, length: 4096 })))
  assert.deepEqual(
    replies.map((r) => r.action),
    ['retry', 'retry', 'retry', 'retry'],
  )
  const updates = a.pushes.filter((p) => p.method === 'table.update')
  assert.equal(updates.length, 1, 'one allocation')
  assert.equal(updates[0]?.params.lazy, true, 'allocations commit lazily: the agent barriers on fsync')
  assert.ok((updates[0]?.params.start as number) <= 3 * MiB && (updates[0]?.params.end as number) >= 4 * MiB)
  assert.equal(a.events[1], 'ack table.update lazy', 'the update is acked before any retry')
  assert.equal(a.events[2], 'reply retry')
  const m = await f.call('disk.map', { name: 'thin' })
  assert.deepEqual(
    m.extents.map((e) => [e.offset, e.length, e.device, e.zero]),
    [
      [0, 3 * MiB, null, true],
      [3 * MiB, MiB, 'dev0', false],
      [4 * MiB, 60 * MiB, null, true],
    ],
  )
  assert.equal((await f.call('disk.list', {}))[0]?.allocated, MiB)
  assert.equal(a.tables.get('thin')?.allocated(), MiB, "the agent's copy followed")
})

test('a fault straddling a unit edge maps both units, keeping other flags', async (t) => {
  const { f, a } = await setup(t)
  await f.call('extent.set', { name: 'thin', offset: 10 * MiB, length: MiB, set: ['no-write'], clear: [] })
  const r = await a.fault({ disk: 'thin', kind: 'unallocated', offset: 10 * MiB - 512, length: 1024 })
  assert.equal(r.action, 'retry')
  const m = await f.call('disk.map', { name: 'thin' })
  const mapped = m.extents.filter((e) => e.device !== null)
  assert.deepEqual(
    mapped.map((e) => [e.offset, e.length, e.noWrite, e.zero]),
    [
      [9 * MiB, MiB, false, false],
      [10 * MiB, MiB, true, false],
    ],
  )
  // the agent's copy followed
  assert.equal(a.tables.get('thin')?.allocated(), 2 * MiB)
})

test('pool full: the fault waits, then fails with no space; a device added meanwhile lets it through', async (t) => {
  const { f, a } = await setup(t, { noSpaceTimeoutMs: 300 }, 3 * MiB)
  assert.equal((await a.fault({ disk: 'thin', kind: 'unallocated', offset: 0, length: 4096 })).action, 'retry')
  assert.equal((await a.fault({ disk: 'thin', kind: 'unallocated', offset: MiB, length: 4096 })).action, 'retry')
  const full = await a.fault({ disk: 'thin', kind: 'unallocated', offset: 2 * MiB, length: 4096 })
  assert.equal(full.action, 'fail')
  assert.match(full.reason ?? '', /no space/)
  assert.equal((await f.call('disk.list', {}))[0]?.allocated, 2 * MiB)

  await f.restart({ noSpaceTimeoutMs: 20_000 })
  const b = await FakeAgent.connect(f.socket, 'agent-2')
  f.onCleanup(() => b.close())
  const pending = b.fault({ disk: 'thin', kind: 'unallocated', offset: 2 * MiB, length: 4096 })
  await new Promise((r) => setTimeout(r, 300))
  await f.call('device.add', { path: f.file('d1.img', 8 * MiB) })
  assert.equal((await pending).action, 'retry')
  const m = await f.call('disk.map', { name: 'thin' })
  assert.equal(m.extents.find((e) => e.offset === 2 * MiB)?.device, 'dev1')
})

test('unmapped and write-protected faults are denied without a change; a stale write-protected fault is retried', async (t) => {
  const { f, a } = await setup(t)
  await f.call('extent.set', { name: 'thin', offset: 0, length: MiB, set: ['no-write'], clear: [] })
  const gen = (await f.call('status', {})).controller.generation
  const updates = a.count('table.update')
  assert.deepEqual(await a.fault({ disk: 'thin', kind: 'unmapped', offset: 0, length: 4096 }), {
    action: 'deny',
    reason: 'no mapping',
    errno: 'EIO',
  })
  const wp = await a.fault({ disk: 'thin', kind: 'write-protected', offset: 0, length: 4096 })
  assert.deepEqual([wp.action, wp.errno], ['deny', 'EROFS'])
  // the range is writable in the controller's table: the agent's copy was behind, so it retries
  assert.equal((await a.fault({ disk: 'thin', kind: 'write-protected', offset: 2 * MiB, length: 4096 })).action, 'retry')
  assert.equal((await f.call('status', {})).controller.generation, gen)
  assert.equal(a.count('table.update'), updates)
})

test('device-error marks the units error persistently and the device unhealthy', async (t) => {
  const { f, a } = await setup(t)
  await f.call('disk.create', { name: 'thick', size: 8 * MiB })
  const r = await a.fault({ disk: 'thick', kind: 'device-error', offset: 2 * MiB + 100, length: 4096, device: 1, errno: 'EIO' })
  assert.equal(r.action, 'deny')
  const check = async () => {
    const m = await f.call('disk.map', { name: 'thick' })
    assert.deepEqual(
      m.extents.map((e) => [e.offset, e.length, e.error, e.device]),
      [
        [0, 2 * MiB, false, 'dev0'],
        [2 * MiB, MiB, true, 'dev0'],
        [3 * MiB, 5 * MiB, false, 'dev0'],
      ],
    )
    const [d] = await f.call('device.list', {})
    assert.equal(d?.health, 'error')
    assert.equal(d?.errors, 1)
  }
  await check()
  assert.equal(a.count('table.update'), 1)
  await f.restart()
  await check()
})

test('an agent that did not take the update gets a full load before its retry', async (t) => {
  const { f, a } = await setup(t)
  a.failUpdates = true
  const r = await a.fault({ disk: 'thin', kind: 'unallocated', offset: 5 * MiB, length: 4096 })
  assert.equal(r.action, 'retry')
  assert.equal(a.count('table.load'), 2, 'reloaded after the failed update')
  assert.equal(a.tables.get('thin')?.allocated(), MiB, 'the retry finds the unit mapped in its copy')
  assert.equal((await f.call('disk.list', {}))[0]?.allocated, MiB)
})

test('metadata.sync: an agent gets a barrier after lazy allocation commits; the allocation survives a restart; CLI connections are refused', async (t) => {
  const { f, a } = await setup(t)
  assert.equal((await a.fault({ disk: 'thin', kind: 'unallocated', offset: 5 * MiB, length: 4096 })).action, 'retry')
  const r = await a.conn.call('metadata.sync', {})
  assert.equal(r.generation, (await f.call('status', {})).controller.generation)
  const code = await f.failCode('metadata.sync' as 'status', {})
  assert.equal(code, 'BAD_REQUEST', 'metadata.sync is for agents')
  await f.restart()
  const m = await f.call('disk.map', { name: 'thin' })
  assert.equal(m.extents.find((e) => e.offset === 5 * MiB)?.device, 'dev0')
})
