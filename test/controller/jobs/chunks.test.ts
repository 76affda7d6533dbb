import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CHUNK, chunkLength, forgetChunks, nextLength, planned } from '../../../src/controller/jobs/chunks'
import { CHUNK_MAX } from '../../../src/controller/jobs/copy'
import type { JobRec } from '../../../src/controller/jobs/runner'

test('chunks double while no agent is busy, up to CHUNK_MAX, and are CHUNK again after a busy one or an undo', () => {
  const job = { id: 7 } as JobRec
  const lengths: number[] = []
  const next = (busy: boolean): void => {
    nextLength(job, busy)
    lengths.push(chunkLength(job))
  }
  for (const busy of [true, false, false, false, false, true, false]) next(busy)
  assert.deepEqual(
    lengths.map((n) => n / CHUNK),
    [1, 2, 4, 4, 4, 1, 2],
  )
  assert.equal(CHUNK_MAX, 4 * CHUNK)
  forgetChunks(job)
  assert.equal(chunkLength(job), CHUNK)
  assert.equal(planned.size, 0)
})
