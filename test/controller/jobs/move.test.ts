import assert from 'node:assert/strict'
import { test } from 'node:test'
import { threads } from '../../helpers/sched'
import { FakeAgent } from '../agent'
import { startFixture, waitFor } from '../util'

const M = 2 ** 20

test("a move's fence goes out as a hold; every controller thread runs real-time until the switch is pushed", async (t) => {
  const f = await startFixture(t)
  for (const name of ['d0', 'd1']) await f.call('device.add', { path: f.file(`${name}.img`, 100 * M), name })
  await f.call('disk.create', { name: 'a', size: 24 * M, devices: ['d0'] })
  const a = await FakeAgent.connect(f.socket)
  f.onCleanup(() => a.close())
  await waitFor(() => a.count('table.load') === 1, 'the first table.load')
  // this process is the controller: look at its threads as each change arrives
  const seen: { hold: boolean; lazy: boolean; realtime: number; threads: number }[] = []
  a.onPush = (p) => {
    if (p.method !== 'table.update') return
    const now = [...threads().values()]
    const realtime = now.filter((s) => s.policy === 1).length
    seen.push({ hold: p.params.hold === true, lazy: p.params.lazy === true, realtime, threads: now.length })
  }
  const job = await f.call('disk.move', { name: 'a', to: 'd1' })
  assert.equal((await f.call('job.wait', { id: job.id })).state, 'done')
  const fences = seen.filter((s) => s.hold)
  const switches = seen.filter((s) => s.lazy)
  assert.ok(fences.length >= 2, `a few chunks (${seen.length} changes)`)
  assert.equal(switches.length, fences.length, 'each fence is followed by its switch')
  for (const s of fences) assert.equal(s.realtime, s.threads, 'every thread real-time while the fence holds writes')
  for (const s of switches) assert.equal(s.realtime, 0, 'none once the switch is out')
  assert.ok([...threads().values()].every((s) => s.policy === 0))
})
