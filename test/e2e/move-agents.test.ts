// Issue 9 end to end: moves with two agents (two mounts of the same disks,
// `vstor mount --agent-id a` and `b`), one of which stops answering.
//   * during a move, a write through one agent is what the other reads next,
//     every time (a checker alternates write-through-one, read-through-other),
//     and after it both pass a verify of the whole disk;
//   * while agent a is SIGSTOPped and a move waits for its ack, agent b's first
//     write into a thin disk, `disk create` and `disk map` complete: the
//     controller's lock is not held across agent round trips; after SIGCONT the
//     same move finishes;
//   * with a short --agent-timeout the move fails naming agent a; a write
//     through b held by the fenced chunk completes; nothing is corrupted; after
//     `vstor agent forget a` running the move again finishes.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { JobInfo, Status } from '../../src/protocol/messages'
import { MiB, qemuIoOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { qemuIoArgs } from '../helpers/proc'
import {
  assertSpaceConsistent,
  controllerClient,
  devicesOf,
  fioFill,
  fioReadVerifyOk,
  jobWaitDone,
  pause,
  startJob,
  waitFenced,
} from '../helpers/jobs'

const SIZE = 64 * MiB

/** A child alternating "write 4 KiB through one mount, read it through the other" until stopFile exists. */
function crossChecker(v: Instance, imgA: string, imgB: string, stopFile: string): Promise<{ rounds: number; bad: string[] }> {
  const script = `
    const fs = require('fs')
    const [a, b, stop, size] = process.argv.slice(1)
    const fa = fs.openSync(a, 'r+'), fb = fs.openSync(b, 'r+')
    const w = Buffer.alloc(4096), r = Buffer.alloc(4096)
    let rounds = 0; const bad = []
    while (!fs.existsSync(stop)) {
      const [to, from, name] = rounds % 2 ? [fb, fa, 'b->a'] : [fa, fb, 'a->b']
      const off = ((rounds * 7919) % (Number(size) / 4096)) * 4096
      w.fill(rounds & 0xff); w.writeUInt32LE(rounds, 0)
      fs.writeSync(to, w, 0, 4096, off)
      fs.readSync(from, r, 0, 4096, off)
      if (!r.equals(w) && bad.length < 10) bad.push(name + ' at ' + off + ' round ' + rounds)
      rounds++
    }
    console.log(JSON.stringify({ rounds, bad }))`
  const child = v.background(process.execPath, ['-e', script, imgA, imgB, stopFile, String(SIZE)])
  return child.done.then((r) => {
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout) as { rounds: number; bad: string[] }
  })
}

const agentOf = (s: Status, id: string) => s.agents.find((a) => a.id === id)

/** Both agents connected and at the controller's generation. */
async function agentsInSync(v: Instance): Promise<Status> {
  return waitFor('agents a and b connected and in sync', async () => {
    const s = await v.status()
    const ok = ['a', 'b'].every((id) => agentOf(s, id)?.connected && agentOf(s, id)?.generation === s.controller.generation)
    return ok ? s : null
  })
}

test('moves with two agents, one of them stalled', async (t) => {
  const v = await vstorInstance(t)
  await v.startController(['--agent-timeout', '30s'])
  await v.addDevice(100 * MiB, 'd0')
  await v.addDevice(100 * MiB, 'd1')
  await v.run(['disk', 'create', 's', '--size', '64M', '--device', 'd0'])
  await v.run(['disk', 'create', 'o', '--size', '16M', '--thin'])
  await v.mount(['--agent-id', 'a'])
  const mntB = path.join(v.dir, 'mnt-b')
  fs.mkdirSync(mntB)
  await v.run(['mount', mntB, '--agent-id', 'b'])
  v.onTeardown(async () => void (await v.run(['unmount', mntB])))
  const imgA = v.image('s')
  const imgB = path.join(mntB, 's.img')
  await waitFor('s.img in both mounts', () => fs.existsSync(imgB) && fs.existsSync(imgA))
  await fioFill(imgA, SIZE)
  const ctl = controllerClient(t, v)
  const pidA = agentOf(await agentsInSync(v), 'a')!.pid

  await t.test('during a move, what one agent writes the other reads; both verify after it', async () => {
    const stop = path.join(v.dir, 'stop-checker')
    const checker = crossChecker(v, imgA, imgB, stop)
    const job = await startJob(v, ['disk', 'move', 's', '--to', 'd1'])
    await jobWaitDone(v, job.id)
    fs.writeFileSync(stop, '')
    const { rounds, bad } = await checker
    t.diagnostic(`cross-agent write/read rounds during the move: ${rounds}`)
    assert.deepEqual(bad, [])
    assert.ok(rounds > 0)
    assert.deepEqual(devicesOf(await v.diskMap('s')), ['d1'])
    await fioFill(imgB, SIZE) // new headers through b, verified through a and b
    await fioReadVerifyOk(imgA, SIZE)
    await fioReadVerifyOk(imgB, SIZE)
  })

  await t.test('agent a stopped: b allocates and the controller answers while the move waits; SIGCONT lets it finish', async () => {
    const cont = pause(v, pidA)
    const job = await startJob(v, ['disk', 'move', 's', '--to', 'd0'])
    await waitFenced(v, 's')
    const before = (await ctl.call('job.list', {})).find((j) => j.id === job.id)!
    await qemuIoOk(path.join(mntB, 'o.img'), ['write -P 0x6f 5M 8k', 'read -P 0x6f 5M 8k', 'read -P 0 0 4k'])
    await v.run(['disk', 'create', 'n', '--size', '4M', '--thin'])
    const o = await v.diskMap('o')
    assert.ok(o.extents.some((e) => e.offset <= 5 * MiB && 5 * MiB < e.offset + e.length && e.device !== null && !e.zero))
    // All of that happened while the move still waited for agent a's ack of its first fence.
    const during = (await ctl.call('job.list', {})).find((j) => j.id === job.id)!
    assert.equal(during.state, 'running')
    assert.equal(during.done, before.done)
    cont()
    const done = await jobWaitDone(v, job.id)
    assert.equal(done.done, SIZE)
    assert.deepEqual(devicesOf(await v.diskMap('s')), ['d0'])
    await fioReadVerifyOk(imgA, SIZE)
  })

  await t.test('agent a stopped past --agent-timeout: the move fails naming it; after agent forget it finishes', async () => {
    await v.stopController()
    await v.startController(['--agent-timeout', '2s'])
    await agentsInSync(v)
    pause(v, pidA)
    const job = await startJob(v, ['disk', 'move', 's', '--to', 'd1'])
    await waitFenced(v, 's')
    // b writes into the fenced chunk: held, it completes after the failed chunk is undone.
    const held = v.background('qemu-io', qemuIoArgs(imgB, ['write -P 0x4b 1M 64k']))
    const r = await v.run(['job', 'wait', String(job.id)], { expectFail: true, timeoutMs: 120_000 })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /failed: .*agent a\b.*did not apply/)
    const w = await held.done
    assert.equal(w.code, 0, w.stdout + w.stderr)
    assert.doesNotMatch(w.stdout, /failed/)
    const failed: JobInfo = (await ctl.call('job.list', {})).find((j) => j.id === job.id)!
    assert.equal(failed.state, 'failed')
    const [s] = await assertSpaceConsistent(v, ['s', 'o', 'n'])
    assert.equal(
      s!.extents.some((e) => e.noWrite),
      false,
      'the undone chunk is still no-write',
    )
    await qemuIoOk(imgB, ['read -P 0x4b 1M 64k'])

    await v.run(['agent', 'forget', 'a'])
    const again = (await v.run<JobInfo>(['disk', 'move', 's', '--to', 'd1', '--wait'], { json: true, timeoutMs: 120_000 })).json
    assert.equal(again.state, 'done')
    assert.deepEqual(devicesOf(await v.diskMap('s')), ['d1'])
    await assertSpaceConsistent(v, ['s', 'o', 'n'])
    await qemuIoOk(imgB, ['read -P 0x4b 1M 64k'])
    await fioFill(imgB, SIZE)
    await fioReadVerifyOk(imgB, SIZE)
  })
})
