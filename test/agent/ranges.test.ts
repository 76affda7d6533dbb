import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RangeGate } from '../../src/agent/ranges'

test('enter runs at once when nothing is blocked', () => {
  const g = new RangeGate()
  let ran = 0
  g.enter(0, 10, true, (tok) => {
    ran++
    g.leave(tok)
  })
  assert.equal(ran, 1)
  assert.equal(g.active, 0)
})

test('quiesce waits for overlapping in-flight requests only', async () => {
  const g = new RangeGate()
  const toks: number[] = []
  g.enter(0, 100, true, (t) => toks.push(t)) // overlaps [50, 150)
  g.enter(200, 300, true, (t) => toks.push(t)) // does not
  let quiesced = false
  const p = g.quiesce(50, 150).then((release) => {
    quiesced = true
    return release
  })
  await new Promise((r) => setImmediate(r))
  assert.equal(quiesced, false, 'must wait for the overlapping request')
  g.leave(toks[0]!)
  const release = await p
  assert.equal(quiesced, true)
  assert.equal(g.active, 1, 'the non-overlapping request is untouched')
  release()
})

test('requests into a blocked range park and run after release, others pass', async () => {
  const g = new RangeGate()
  const release = await g.quiesce(0, 100)
  const order: string[] = []
  g.enter(50, 60, true, (t) => {
    order.push('parked')
    g.leave(t)
  })
  g.enter(100, 200, true, (t) => {
    order.push('outside')
    g.leave(t)
  })
  assert.deepEqual(order, ['outside'])
  assert.equal(g.waiting, 1)
  release()
  assert.deepEqual(order, ['outside', 'parked'])
  assert.equal(g.waiting, 0)
})

test('a request that left to wait does not hold up quiesce', async () => {
  const g = new RangeGate()
  let tok = 0
  g.enter(0, 10, true, (t) => (tok = t))
  g.leave(tok) // e.g. it faulted and now waits on the controller
  const release = await g.quiesce(0, 10)
  release()
  assert.equal(g.active, 0)
})

test('two blocks: a parked request waits until both are released', async () => {
  const g = new RangeGate()
  const r1 = await g.quiesce(0, 50)
  const r2 = await g.quiesce(40, 100)
  let ran = false
  g.enter(30, 60, true, (t) => {
    ran = true
    g.leave(t)
  })
  r1()
  assert.equal(ran, false)
  r2()
  assert.equal(ran, true)
})

/** Whether p is still pending once the event loop has turned. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let done = false
  void p.then(() => (done = true))
  await new Promise((r) => setImmediate(r))
  return !done
}

test('a quiesce for writes only waits for the writes in flight, not the reads; new requests of either kind park', async () => {
  const g = new RangeGate()
  const toks: number[] = []
  g.enter(0, 100, false, (t) => toks.push(t)) // a read
  g.enter(50, 60, true, (t) => toks.push(t)) // a write
  const p = g.quiesce(0, 100, true)
  assert.equal(await pending(p), true, 'must wait for the write')
  g.leave(toks[1]!)
  const release = await p
  assert.equal(g.active, 1, 'the read is still in flight')
  const order: string[] = []
  g.enter(10, 20, false, (t) => {
    order.push('read')
    g.leave(t)
  })
  assert.equal(g.waiting, 1, 'a new read parks while the range is blocked')
  release()
  assert.deepEqual(order, ['read'])
  // a full quiesce still waits for the read
  const q = g.quiesce(0, 100)
  assert.equal(await pending(q), true, 'must wait for the read')
  g.leave(toks[0]!)
  ;(await q)()
})
