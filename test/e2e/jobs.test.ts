// Issue 9 end to end: the job commands. `disk move --wait` shows the outcome
// and exits 0; `job list --json` has the job with its progress and stall
// stats; `job wait` exits 0 for a done job and 1 (saying why) for a cancelled
// one; `job cancel` of a move waiting on a stopped agent ends it at once as
// cancelled and undoes the chunk in progress (its old place and states come
// back, the new space goes back to the pool); an evacuation whose disk is
// deleted under it goes on with the next disk and keeps no space for it.

import assert from 'node:assert/strict'
import test from 'node:test'
import { CHUNK_MAX } from '../../src/controller/jobs/copy'
import { FIRST_CHUNK } from '../../src/controller/jobs/move'
import type { JobInfo } from '../../src/protocol/messages'
import { MiB, qemuIoOk, vstorInstance } from '../helpers/instance'
import { assertSpaceConsistent, devicesOf, jobInfo, jobList, pause, startJob, waitFenced } from '../helpers/jobs'

test('job list, job wait, job cancel, disk move --wait', async (t) => {
  const v = await vstorInstance(t)
  // Long enough that only a cancel can end the waiting move below.
  await v.startController(['--agent-timeout', '120s'])
  await v.addDevice(64 * MiB, 'd0')
  await v.addDevice(64 * MiB, 'd1')
  await v.run(['disk', 'create', 'j', '--size', '32M', '--device', 'd0'])
  await v.mount()
  const img = v.image('j')
  await qemuIoOk(img, ['write -P 0x4a 0 32M'])
  let moved: JobInfo

  await t.test('disk move --wait prints the outcome and exits 0', async () => {
    const r = await v.run(['disk', 'move', 'j', '--to', 'd1', '--wait'])
    assert.match(r.stdout, /^job (\d+) \(move j\): done, 32M of 32M, stall per chunk p50 [\d.]+ ms p99 [\d.]+ ms$/m)
    assert.deepEqual(devicesOf(await v.diskMap('j')), ['d1'])
  })

  await t.test('job list --json shows it done with its stats', async () => {
    const jobs = await jobList(v)
    assert.equal(jobs.length, 1)
    moved = jobs[0]!
    assert.equal(moved.kind, 'move')
    assert.equal(moved.disk, 'j')
    assert.equal(moved.state, 'done')
    assert.equal(moved.error, null)
    assert.equal(moved.total, 32 * MiB)
    assert.equal(moved.done, 32 * MiB)
    assert.ok(
      moved.stats.chunks >= Math.ceil((32 * MiB) / CHUNK_MAX) + 1 && moved.stats.chunks <= (32 * MiB) / FIRST_CHUNK,
      `${moved.stats.chunks} chunks`,
    )
    assert.equal(typeof moved.stats.stallP50Ms, 'number')
    assert.ok(moved.stats.stallP99Ms! >= moved.stats.stallP50Ms!)
    assert.ok(moved.stats.copyMBps! > 0)
  })

  await t.test('job wait of a done job exits 0', async () => {
    const r = await v.run<JobInfo>(['job', 'wait', String(moved.id)], { json: true })
    assert.equal(r.code, 0)
    assert.equal(r.json.state, 'done')
  })

  await t.test('job cancel ends a move waiting on a stopped agent and undoes its chunk', async () => {
    const agentPid = (await v.status()).agents[0]!.pid
    const cont = pause(v, agentPid)
    const job = await startJob(v, ['disk', 'move', 'j', '--to', 'd0'])
    const fenced = await waitFenced(v, 'j')
    assert.deepEqual(
      fenced.extents.filter((e) => e.noWrite).map((e) => [e.offset, e.length, e.device]),
      [[0, FIRST_CHUNK, 'd1']],
    )
    const c = await v.run<JobInfo>(['job', 'cancel', String(job.id)], { json: true })
    assert.equal(c.json.id, job.id)
    const w = await v.run(['job', 'wait', String(job.id)], { expectFail: true })
    assert.equal(w.code, 1)
    assert.match(w.stderr, new RegExp(`^vstor: job ${job.id} \\(move j\\) cancelled`))
    const info = await jobInfo(v, job.id)
    assert.equal(info.state, 'cancelled')
    assert.equal(info.done, 0)
    const [m] = await assertSpaceConsistent(v, ['j'])
    assert.deepEqual(devicesOf(m!), ['d1'])
    assert.equal(
      m!.extents.some((e) => e.noWrite),
      false,
      'the cancelled chunk is still no-write',
    )
    const d0 = (await v.deviceList()).find((d) => d.name === 'd0')
    assert.equal(d0?.used, 0, 'the cancelled chunk kept its new space')
    cont()
    await qemuIoOk(img, ['read -P 0x4a 0 32M', 'write -P 0x4b 1M 4k', 'read -P 0x4b 1M 4k'])
  })

  await t.test('device evacuate goes on past a disk deleted under it and gives back the space it took for it', async () => {
    await v.run(['disk', 'create', 'x', '--size', '16M', '--device', 'd0'])
    await v.run(['disk', 'create', 'y', '--size', '8M', '--device', 'd0'])
    await qemuIoOk(v.image('y'), ['write -P 0x79 0 8M'])
    const cont = pause(v, (await v.status()).agents[0]!.pid)
    const job = await startJob(v, ['device', 'evacuate', 'd0'])
    await waitFenced(v, 'x') // its new space is taken and copied; the fence waits for the stopped agent
    await v.run(['disk', 'delete', 'x'])
    cont()
    const done = (await v.run<JobInfo>(['job', 'wait', String(job.id)], { json: true })).json
    assert.equal(done.state, 'done')
    const [y] = await assertSpaceConsistent(v, ['y'])
    assert.deepEqual(devicesOf(y!), ['d1'])
    assert.equal((await v.deviceList()).find((d) => d.name === 'd0')?.used, 0)
    await qemuIoOk(v.image('y'), ['read -P 0x79 0 8M'])
  })
})
