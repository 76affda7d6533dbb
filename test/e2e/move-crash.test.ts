// Issue 9 end to end: the controller is SIGKILLed in the middle of a move
// twice: after some chunks moved, while the job waits for a stopped agent's
// ack; and once more after it resumed with a chunk fenced. Started again, the
// same job resumes from its checkpoint (the fenced chunk) and finishes; fio's writes made before, during (held by the
// fence and the outage) and after verify; no extent is lost and no physical
// range is owned twice.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { JobInfo } from '../../src/protocol/messages'
import { MiB, pidDead, qemuIoOk, vstorInstance, waitFor } from '../helpers/instance'
import {
  assertSpaceConsistent,
  controllerClient,
  devicesOf,
  fioFill,
  fioLoop,
  fioReadVerifyOk,
  jobWaitDone,
  pause,
  startJob,
  waitFenced,
} from '../helpers/jobs'

const SIZE = 128 * MiB

test('kill -9 of the controller mid-move: the job resumes and finishes, data intact', async (t) => {
  const v = await vstorInstance(t)
  await v.startController(['--agent-timeout', '60s'])
  await v.addDevice(160 * MiB, 'd0')
  await v.addDevice(160 * MiB, 'd1')
  await v.run(['disk', 'create', 'k', '--size', '128M', '--device', 'd0'])
  await v.run(['disk', 'create', 'z', '--size', '8M', '--device', 'd0'])
  await v.mount(['--fault-timeout', '120s'])
  const img = v.image('k')
  await fioFill(img, SIZE)
  await qemuIoOk(v.image('z'), ['write -P 0x7a 0 8M'])
  const agentPid = (await v.status()).agents[0]?.pid ?? 0
  assert.ok(agentPid > 0)
  const ctl = controllerClient(t, v)

  const writer = fioLoop(v, img, SIZE)
  const job = await startJob(v, ['disk', 'move', 'k', '--to', 'd1'])
  const early = await waitFor(
    'some chunks moved',
    async () => {
      const j = (await ctl.call('job.list', {})).find((x) => x.id === job.id)
      return j && (j.done > 0 || j.state !== 'running') ? j : null
    },
    60_000,
    5,
  )
  assert.equal(early.state, 'running', `the job ended before the kill: ${JSON.stringify(early)}`)
  // Stop the agent: the job blocks on an ack it cannot get (a fence or a switch; the controller's
  // generation passes the agent's). Kill it there.
  const cont = pause(v, agentPid)
  await waitFor('the move blocked on the stopped agent', async () => {
    const s = await v.status()
    return s.controller.generation > (s.agents.find((a) => a.pid === agentPid)?.generation ?? Infinity)
  })
  assert.ok(pidDead(await v.killController()), 'the controller survived SIGKILL')
  // Started again with the agent still stopped, the resumed job fences a chunk (or has one fenced)
  // and waits for that ack: kill it again there, so the last resume starts from a fenced chunk.
  await v.startController(['--agent-timeout', '60s'])
  const fenced = await waitFenced(v, 'k')
  assert.ok(pidDead(await v.killController()), 'the controller survived SIGKILL')
  cont()
  await v.startController(['--agent-timeout', '60s'])

  const log = fs.readFileSync(path.join(v.dataDir, 'controller.log'), 'utf8')
  const resumes = [...log.matchAll(new RegExp(`job ${job.id} \\(move k\\) resumes from its checkpoint at (\\d+) of (\\d+) bytes`, 'g'))]
  assert.equal(resumes.length, 2, `expected two resume lines for job ${job.id} in controller.log`)
  for (const m of resumes) assert.ok(Number(m[1]) > 0 && Number(m[1]) < SIZE, `resumed at ${m[1]}`)
  const held = fenced.extents.filter((e) => e.noWrite)
  t.diagnostic(
    `resumed at ${resumes.map((m) => m[1]).join(', ')}; fenced at the second kill: ${held.map((e) => `${e.offset}+${e.length}`)}`,
  )

  const done: JobInfo = await jobWaitDone(v, job.id)
  assert.equal(done.total, SIZE)
  const passes = await writer.stop()
  t.diagnostic(`fio randwrite+verify passes across the move and the outage: ${passes}`)

  const [k] = await assertSpaceConsistent(v, ['k', 'z'])
  assert.deepEqual(devicesOf(k!), ['d1'])
  assert.equal(
    k!.extents.some((e) => e.noWrite || e.invalid || e.zero || e.error),
    false,
    JSON.stringify(k),
  )
  await fioReadVerifyOk(img, SIZE)
  await qemuIoOk(v.image('z'), ['read -P 0x7a 0 8M'])
  // Only that one job: the move was resumed, not started again.
  assert.deepEqual(
    (await ctl.call('job.list', {})).map((j) => [j.id, j.state]),
    [[job.id, 'done']],
  )
})
