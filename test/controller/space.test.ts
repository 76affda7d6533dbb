import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nextStep, SCRUB_CHUNK, STEP_MIN, STEP_TARGET_MS } from '../../src/controller/space'

const M = 2 ** 20

test('scrub steps shrink after a slow discard (it held the device file) and grow back while discards are fast', () => {
  // a 256 MiB punch of fragmented space took 1.4 s: one slow step halves, down to the floor
  let step = 4 * M
  step = nextStep(step, step, 1400)
  assert.equal(step, 2 * M)
  step = nextStep(step, step, 3 * STEP_TARGET_MS)
  assert.equal(step, STEP_MIN)
  assert.equal(nextStep(step, step, 1000), STEP_MIN)
  // on target: unchanged
  assert.equal(nextStep(8 * M, 8 * M, STEP_TARGET_MS), 8 * M)
  // fast full steps double, up to one span
  for (let i = 0; i < 20; i++) step = nextStep(step, step, 1)
  assert.equal(step, SCRUB_CHUNK)
  // a short tail step that was fast says nothing about a full one
  assert.equal(nextStep(16 * M, 3 * M, 1), 16 * M)
})
