// What a move learns from the agents' acks: whether they serve foreground I/O (it rests), and
// whether any wrote since before its pre-copy (it rereads the chunk under the fence), and how long a
// chunk's writes were held.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AgentRec } from '../../../src/controller/agents'
import type { Ctx } from '../../../src/controller/context'
import { foreground, heldMs, unwritten, writesNow } from '../../../src/controller/jobs/acks'

function ctxWith(agents: Pick<AgentRec, 'id' | 'served'>[]): Ctx {
  return { agents: { known: () => agents } } as unknown as Ctx
}

test('a move rests after its first chunk, then only when some agent served requests since the last one', () => {
  const a = { id: 'a', served: 10 as number | null }
  const b = { id: 'b', served: 5 as number | null }
  const ctx = ctxWith([a, b])
  assert.equal(foreground(ctx, 1), true, 'first chunk: nothing to compare with')
  assert.equal(foreground(ctx, 1), false, 'idle pool: full speed')
  b.served = 6
  assert.equal(foreground(ctx, 1), true, 'one agent served a request')
  assert.equal(foreground(ctx, 1), false)
  a.served = null
  assert.equal(foreground(ctx, 1), true, 'an agent that does not report counts as busy')
  a.served = 11
  assert.equal(foreground(ctx, 2), true, 'each job keeps its own baseline')
  assert.equal(foreground(ctx, 2), false)
})

test('an agent that appears between chunks counts as busy', () => {
  const agents = [{ id: 'a', served: 1 as number | null }]
  const ctx = ctxWith(agents)
  foreground(ctx, 3)
  agents.push({ id: 'c', served: 0 })
  assert.equal(foreground(ctx, 3), true)
})

test('a pre-copy needs no reread only when every agent is local and reported the same write count over the same connection', () => {
  const local = { peerName: null, closed: false }
  const a = { id: 'a', conn: local as unknown, written: 7 as number | null }
  const b = { id: 'b', conn: { peerName: null, closed: false } as unknown, written: 0 as number | null }
  const ctx = { agents: { known: () => [a, b] } } as unknown as Ctx
  let before = writesNow(ctx)
  assert.equal(unwritten(ctx, before), true, 'no write finished anywhere')
  b.written = 1
  assert.equal(unwritten(ctx, before), false, 'one write finished on one agent, any disk')
  before = writesNow(ctx)
  a.conn = { peerName: null, closed: false } // a restarted: its count starts again, equal or not
  assert.equal(unwritten(ctx, before), false)
  before = writesNow(ctx)
  a.written = null
  assert.equal(unwritten(ctx, writesNow(ctx)), false, 'an agent that does not report counts as having written')
  a.written = 7
  before = writesNow(ctx)
  b.conn = { peerName: 'host2', closed: false } // over TLS: its writes may be in another host's cache
  assert.equal(unwritten(ctx, before), false)
  b.conn = local
  before = writesNow(ctx)
  const c = { id: 'c', conn: local as unknown, written: 0 as number | null }
  const ctx2 = { agents: { known: () => [a, b, c] } } as unknown as Ctx
  assert.equal(unwritten(ctx2, before), false, 'an agent that appeared since')
})

test("a chunk's stall is the longest an agent held its writes: from blocking the range for the fence to applying the switch, each on its own clock", () => {
  const a = {
    id: 'a',
    applied: new Map([
      [5, { blockedAt: 100, appliedAt: 101 }],
      [6, { blockedAt: 120, appliedAt: 130 }],
    ]),
  }
  const b = {
    id: 'b',
    applied: new Map([
      [5, { blockedAt: 9000, appliedAt: 9000.5 }],
      [6, { blockedAt: 9004, appliedAt: 9004.5 }],
    ]),
  }
  const ctx = { agents: { known: () => [a, b] } } as unknown as Ctx
  assert.equal(heldMs(ctx, 5, 6), 30, 'agent a: 130 - 100 (b held 4.5 ms on a clock of its own)')
  b.applied.delete(5) // b was reloaded instead of acking the fence: not measured there
  assert.equal(heldMs(ctx, 5, 6), null)
  assert.equal(heldMs({ agents: { known: () => [] } } as unknown as Ctx, 5, 6), null, 'no agent: nothing measured')
})
