import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nextStep, SCRUB_CHUNK, STEP_MIN, STEP_TARGET_MS } from '../../src/controller/space'
import { FakeAgent } from './agent'
import { startFixture, waitFor } from './util'

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

test('the scrubber waits while a job copies (its discards would land in the move commits), then scrubs what was freed', async (t) => {
  const f = await startFixture(t)
  for (const name of ['d0', 'd1']) await f.call('device.add', { path: f.file(`${name}.img`, 100 * M), name })
  await f.scrubbed()
  await f.call('disk.create', { name: 'a', size: 64 * M, devices: ['d0'] })
  await f.call('disk.create', { name: 'b', size: 8 * M, devices: ['d0'] })
  const a = await FakeAgent.connect(f.socket)
  f.onCleanup(() => a.close())
  await waitFor(() => a.count('table.load') === 1, 'the first table.load')
  a.updateDelayMs = 200 // every fence and switch waits for this agent: the move runs for a few seconds
  const job = await f.call('disk.move', { name: 'a', to: 'd1' })
  await waitFor(() => a.count('table.update') >= 1, 'the first fence')
  await f.call('disk.delete', { name: 'b' })
  const d0 = async () => (await f.call('device.list', {})).find((d) => d.name === 'd0')!
  await waitFor(async () => (await d0()).scrubbing >= 8 * M, "disk b's space released, to be scrubbed")
  const seen = a.count('table.update')
  await waitFor(() => a.count('table.update') >= seen + 2, 'the move going on')
  assert.ok((await d0()).scrubbing >= 8 * M, 'nothing was scrubbed while the job copied')
  assert.equal((await f.call('job.wait', { id: job.id })).state, 'done')
  await f.scrubbed() // the job's end wakes the scrubber: every freed byte is scrubbed
  assert.equal((await d0()).free, (await d0()).capacity)
})
