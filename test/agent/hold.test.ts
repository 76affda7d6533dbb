// A move's fence arrives as a hold: the agent's main thread runs real-time until a change over the
// range applies (src/hurry.ts), while writes there wait.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Hurry } from '../../src/hurry'
import { realtimeSwitch } from '../../src/priority'
import { Flag } from '../../src/table/table'
import { policy } from '../helpers/sched'
import { ext, harness, MiB, pattern } from './harness'

test('a fence pushed as a hold makes the main thread real-time until the switch applies; the held write lands at the new place', async () => {
  const hurry = new Hurry(realtimeSwitch(assert.fail, 'thread'))
  const h = await harness(4 * MiB, [ext(0, MiB, 1, 0), ext(MiB, 3 * MiB, 1, 8 * MiB)], 16 * MiB, hurry)
  assert.equal(policy().policy, 0)
  await h.change(0, MiB, [ext(0, MiB, 1, 0, Flag.NoWrite)], false, true)
  assert.equal(policy().policy, 1, 'real-time while the fence holds writes')
  assert.equal(hurry.held, 1)
  // a change elsewhere on the disk does not end the hold
  await h.change(2 * MiB, 3 * MiB, [ext(2 * MiB, MiB, 2, 2 * MiB)])
  assert.equal(policy().policy, 1)
  // the switch: the chunk maps to device 2
  await h.change(0, MiB, [ext(0, MiB, 2, 0)], true)
  assert.equal(policy().policy, 0, 'normal again once the switch applied')
  assert.equal(hurry.held, 0)
  assert.equal(await h.write(4096, pattern(4096, 3)), 4096)
  assert.deepEqual(h.stores.get(2)!.data.subarray(4096, 8192), pattern(4096, 3))
})
