// The move's throttle: it rests after a chunk only while agents serve foreground I/O.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AgentRec } from '../../../src/controller/agents'
import type { Ctx } from '../../../src/controller/context'
import { foreground } from '../../../src/controller/jobs/move'

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
