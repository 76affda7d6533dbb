import assert from 'node:assert/strict'
import os from 'node:os'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { Hurry } from '../src/hurry'
import { realtimeSwitch } from '../src/priority'
import { policy, threads } from './helpers/sched'

test('a hold switches on once, off when the last hold over it closes (release over its range, clear, or the deadline)', async () => {
  const calls: boolean[] = []
  let deadline!: () => void
  const h = new Hurry((on) => {
    calls.push(on)
    if (!on) deadline?.()
  }, 50)
  h.hold('a', 0, 10)
  h.hold('a', 20, 30)
  h.hold('b', 0, 10)
  assert.deepEqual(calls, [true], 'one switch for any number of holds')
  h.release('a', 10, 20) // touches neither range of a
  h.release('a', 5, 5) // an empty change touches nothing
  h.release('c')
  assert.equal(h.held, 3)
  h.release('a', 5, 25) // overlaps both
  assert.equal(h.held, 1)
  assert.deepEqual(calls, [true])
  h.release('b')
  assert.deepEqual(calls, [true, false])
  h.hold('a', 0, 10)
  h.clear()
  assert.deepEqual(calls, [true, false, true, false])
  // a hold nobody releases closes itself (a controller that died mid-move)
  const closed = new Promise<void>((r) => (deadline = r))
  const alive = setInterval(() => undefined, 1000) // the hold's timer does not keep a process alive
  h.hold('a', 0, 10)
  await closed
  clearInterval(alive)
  assert.equal(h.held, 0)
  assert.deepEqual(calls, [true, false, true, false, true, false])
})

test('realtimeSwitch: the calling thread, or every thread of the process, to SCHED_FIFO and back at its nice', async (t) => {
  const logs: string[] = []
  const before = policy()
  const one = realtimeSwitch((m) => logs.push(m), 'thread')
  one(true)
  assert.equal(policy().policy, 1, 'this thread is real-time')
  one(false)
  assert.deepEqual(policy(), before, 'back to its policy and nice')
  // a second thread (a worker), to tell "this thread" from "every thread"
  const w = new Worker('setInterval(() => {}, 1000)', { eval: true })
  t.after(() => w.terminate())
  await new Promise((r) => w.once('online', r))
  const all = (): number[] => [...threads().values()].map((s) => s.policy)
  one(true)
  assert.ok(all().filter((p) => p === 1).length === 1, 'thread scope: only the caller')
  one(false)
  const every = realtimeSwitch((m) => logs.push(m), 'process')
  every(true)
  assert.ok(
    all().every((p) => p === 1),
    `process scope: every thread (${all().join(' ')})`,
  )
  every(false)
  assert.ok(
    all().every((p) => p === 0),
    'all back',
  )
  assert.equal(policy().nice, os.getPriority(), 'nice kept')
  assert.deepEqual(logs, [])
})
