import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CHUNK, chunkLength, FIRST_CHUNK, forgetChunks, nextLength, planned } from '../../../src/controller/jobs/chunks'
import { CHUNK_MAX } from '../../../src/controller/jobs/copy'
import type { JobRec } from '../../../src/controller/jobs/runner'

test('a first chunk is short; chunks double while no agent is busy, up to CHUNK_MAX, and are CHUNK after a busy one', () => {
  const job = { id: 7 } as JobRec
  assert.equal(chunkLength(job), FIRST_CHUNK)
  assert.ok(FIRST_CHUNK < CHUNK)
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
  assert.equal(chunkLength(job), FIRST_CHUNK, 'after an undo or the end, the next chunk is a first one')
  assert.equal(planned.size, 0)
  nextLength(job, false)
  assert.equal(chunkLength(job), 2 * FIRST_CHUNK, 'an idle first chunk doubles too')
  forgetChunks(job)
})
