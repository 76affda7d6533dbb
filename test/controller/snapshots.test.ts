// Snapshots, clones, copy on write and discards against an in-process
// controller with a fake agent: sharing shows in the listings, the first
// write to a shared unit copies exactly that unit (its old bytes), concurrent
// faults copy once, deleting in any order gives back exactly what was used,
// and the start-time check accepts the shared table after a restart.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { FakeAgent } from './agent'
import { MiB, startFixture, waitFor } from './util'

async function setup(t: Parameters<typeof startFixture>[0]) {
  const f = await startFixture(t)
  const dev = f.file('d0.img', 40 * MiB)
  await f.call('device.add', { path: dev })
  await f.scrubbed()
  const a = await FakeAgent.connect(f.socket)
  f.onCleanup(() => a.close())
  await waitFor(() => a.count('table.load') === 1, 'the first table.load')
  const free = async () => (await f.call('device.list', {}))[0]!.free
  const info = async (name: string) => (await f.call('disk.list', {})).find((d) => d.name === name)!
  const bytes = (at: number, len: number) => {
    const b = Buffer.alloc(len)
    const fd = fs.openSync(dev, 'r')
    fs.readSync(fd, b, 0, len, at)
    fs.closeSync(fd)
    return b
  }
  const put = (at: number, data: Buffer) => {
    const fd = fs.openSync(dev, 'r+')
    fs.writeSync(fd, data, 0, data.length, at)
    fs.closeSync(fd)
  }
  return { f, a, dev, free, info, bytes, put }
}

test('snapshot shares every unit; the first write copies one unit with its old bytes; listings show it', async (t) => {
  const { f, a, free, info, bytes, put } = await setup(t)
  await f.call('disk.create', { name: 'o', size: 8 * MiB })
  const o0 = (await f.call('disk.map', { name: 'o' })).extents[0]!
  put(o0.deviceOffset! + 2 * MiB, Buffer.alloc(MiB, 0x5a)) // what the guest wrote at 2M before the snapshot
  const before = await free()
  const s = await f.call('disk.snapshot', { name: 'o', snapshot: 's' })
  assert.deepEqual([s.readonly, s.origin, s.shared, s.exclusive], [true, 'o', 8 * MiB, 0])
  assert.deepEqual([(await info('o')).shared, (await info('o')).exclusive], [8 * MiB, 0])
  assert.equal(await free(), before, 'a snapshot copies nothing')
  assert.ok((await f.call('disk.map', { name: 's' })).extents.every((e) => e.shared))
  assert.ok(a.tables.has('s'), 'the agent got the snapshot')

  const r = await a.fault({ disk: 'o', kind: 'write-protected', offset: 2 * MiB + 4096, length: 4096 })
  assert.equal(r.action, 'retry')
  const m = await f.call('disk.map', { name: 'o' })
  const moved = m.extents.find((e) => e.offset === 2 * MiB)!
  assert.deepEqual([moved.length, moved.shared], [MiB, false])
  assert.notEqual(moved.deviceOffset, o0.deviceOffset! + 2 * MiB, 'the written unit moved to new space')
  assert.ok(bytes(moved.deviceOffset!, MiB).equals(Buffer.alloc(MiB, 0x5a)), 'its old bytes were copied whole')
  assert.deepEqual([(await info('o')).exclusive, (await info('o')).shared], [MiB, 7 * MiB])
  assert.equal(await free(), before - MiB)
  const sm = await f.call('disk.map', { name: 's' })
  const kept = sm.extents.find((e) => e.offset === 2 * MiB)!
  assert.deepEqual([kept.deviceOffset, kept.shared], [o0.deviceOffset! + 2 * MiB, false], 'the snapshot keeps the old unit, now its own')
  // the agent's copy of the origin has the unit writable now
  const at = a.tables.get('o')!
  assert.equal(at.flags(at.find(2 * MiB)) & 16, 0)

  // a write into a snapshot is refused by the agent itself; a write-protected fault there is EROFS
  const deny = await a.fault({ disk: 's', kind: 'write-protected', offset: 0, length: 4096 })
  assert.deepEqual([deny.action, deny.errno], ['deny', 'EROFS'])
})

test('concurrent faults on one shared unit copy it once; an admin no-write on shared space is EROFS', async (t) => {
  const { f, a, free } = await setup(t)
  await f.call('disk.create', { name: 'o', size: 4 * MiB })
  await f.call('disk.snapshot', { name: 'o', snapshot: 's' })
  const before = await free()
  a.updateDelayMs = 50
  const replies = await Promise.all(
    [0, 4096, 65536, MiB - 512].map((o) => a.fault({ disk: 'o', kind: 'write-protected', offset: MiB + o, length: 512 })),
  )
  assert.deepEqual(
    replies.map((x) => x.action),
    ['retry', 'retry', 'retry', 'retry'],
  )
  assert.equal(await free(), before - MiB, 'one copy')
  a.updateDelayMs = 0
  await f.call('extent.set', { name: 'o', offset: 3 * MiB, length: MiB, set: ['no-write'], clear: [] })
  const r = await a.fault({ disk: 'o', kind: 'write-protected', offset: 3 * MiB, length: 4096 })
  assert.deepEqual([r.action, r.errno], ['deny', 'EROFS'])
})

test('clone is writable on both sides; deleting in every order gives back exactly the space; a restart accepts the shares', async (t) => {
  const s = await setup(t)
  const { f, free, info } = s
  let a = s.a
  const start = await free()
  for (const order of [
    ['o', 's', 'c'],
    ['s', 'c', 'o'],
    ['c', 'o', 's'],
  ]) {
    await f.call('disk.create', { name: 'o', size: 6 * MiB })
    await f.call('disk.snapshot', { name: 'o', snapshot: 's' })
    await f.call('disk.clone', { source: 's', name: 'c' })
    assert.deepEqual([(await info('c')).readonly, (await info('c')).origin], [false, 's'])
    assert.equal((await a.fault({ disk: 'c', kind: 'write-protected', offset: 0, length: 4096 })).action, 'retry')
    assert.equal((await a.fault({ disk: 'o', kind: 'write-protected', offset: 0, length: 4096 })).action, 'retry')
    assert.equal(await free(), start - 8 * MiB, '6M shared by three, plus one copied unit on each writable side')
    await f.restart() // the start-time check must accept the shared table
    // the agent process reconnects (freed space waits for every known agent, connected or not)
    a = await FakeAgent.connect(f.socket, 'agent-1', a.generation, a.epoch)
    const b = a
    f.onCleanup(() => b.close())
    for (const name of order) {
      await f.call('disk.delete', { name })
      await f.call('disk.list', {})
    }
    await waitFor(async () => (await free()) === start, `space back after deleting ${order.join(', ')}`)
  }
})

test('revert: refused while open; afterwards the disk reads the snapshot again and its own copies are freed', async (t) => {
  const { f, a, free } = await setup(t)
  await f.call('disk.create', { name: 'o', size: 4 * MiB })
  await f.call('disk.snapshot', { name: 'o', snapshot: 's' })
  await a.fault({ disk: 'o', kind: 'write-protected', offset: 0, length: 4096 })
  const copied = await free()
  a.conn.notify('agent.open', { disks: ['o'] })
  await a.conn.call('agent.sync', { generation: a.generation })
  assert.equal(await f.failCode('disk.revert', { name: 'o', to: 's' }), 'DISK_OPEN')
  a.conn.notify('agent.open', { disks: [] })
  await a.conn.call('agent.sync', { generation: a.generation })
  await f.call('disk.revert', { name: 'o', to: 's' })
  const o = await f.call('disk.map', { name: 'o' })
  const s = await f.call('disk.map', { name: 's' })
  assert.deepEqual(
    o.extents.map((e) => [e.offset, e.length, e.deviceOffset, e.shared]),
    s.extents.map((e) => [e.offset, e.length, e.deviceOffset, e.shared]),
  )
  await waitFor(async () => (await free()) === copied + MiB, 'the copied unit freed')
  assert.equal(await f.failCode('disk.revert', { name: 's', to: 'o' }), 'READ_ONLY')
})

test('discard: whole units of a thin disk go back to zero once every agent applied it; thick disks write zeros', async (t) => {
  const { f, a, free } = await setup(t)
  await f.call('disk.create', { name: 'th', size: 8 * MiB, thin: true })
  await f.call('disk.create', { name: 'tk', size: 2 * MiB })
  const start = await free()
  await a.fault({ disk: 'th', kind: 'unallocated', offset: 3 * MiB, length: 4096 })
  await a.fault({ disk: 'th', kind: 'unallocated', offset: 4 * MiB, length: 4096 })
  assert.equal(await free(), start - 2 * MiB)
  const uid = (a.pushes.find((p) => p.method === 'disk.add' && p.params.disk === 'th')?.params.uid ??
    (a.pushes.find((p) => p.method === 'table.load')?.params.disks as { name: string; uid: string }[]).find((d) => d.name === 'th')
      ?.uid) as string
  const r = await a.conn.call('discard', { disk: 'th', uid, offset: 3 * MiB - 100, length: MiB + 200 })
  assert.equal(r.result, 'discarded')
  const m = await f.call('disk.map', { name: 'th' })
  assert.ok(m.extents.find((e) => e.offset <= 3 * MiB && e.offset + e.length > 3 * MiB)?.zero, 'the whole unit is zero again')
  assert.ok(!m.extents.find((e) => e.offset <= 4 * MiB && e.offset + e.length > 4 * MiB)?.zero, 'its neighbour is kept')
  await waitFor(async () => (await free()) === start - MiB, 'the unit back in the pool')
  const tkUid = (a.pushes.find((p) => p.method === 'disk.add' && p.params.disk === 'tk')?.params.uid ??
    (a.pushes.find((p) => p.method === 'table.load')?.params.disks as { name: string; uid: string }[]).find((d) => d.name === 'tk')
      ?.uid) as string
  assert.equal((await a.conn.call('discard', { disk: 'tk', uid: tkUid, offset: 0, length: MiB })).result, 'write-zeros')
})
