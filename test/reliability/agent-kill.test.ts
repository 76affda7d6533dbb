// Issue 8: the agent is SIGKILLed while writers write and fsync (3 times here,
// 30 under `npm run torture`), then `vstor mount` is run on the same
// mountpoint again; and a dead mount (agent and its auto-unmount helper both
// killed) is cleaned up by `vstor unmount`.
//
// Invariants checked: after every kill, `vstor mount` takes the mountpoint
// back without a manual umount; every write acked before a completed fsync
// reads back, no block shows bytes its disk did not write; `vstor unmount` of
// a dead mount says so, exits 0 and reports dead: true in --json, and with
// nothing mounted it is NOT_MOUNTED (exit 1).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import test from 'node:test'
import { MiB, isMounted, pidDead, qemuIoOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { Ledger } from './blocks'
import { rng } from './writer'
import { addVerdict, figures, report, scale, startWriter, verifyDisk, type WriterRun } from './writers'

const KILLS = Number(process.env.VSTOR_AGENT_KILLS) || scale(3, 30)

async function agentPid(v: Instance): Promise<number> {
  const s = await v.status()
  const a = s.agents.find((x) => x.connected)
  assert.ok(a, `no connected agent: ${JSON.stringify(s.agents)}`)
  return a.pid
}

/** Children of pid whose command line is fusermount … MNT (libfuse's auto_unmount helper). */
function unmountHelpers(pid: number, mnt: string): number[] {
  const out: number[] = []
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const kids = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim()
    for (const k of kids ? kids.split(' ').map(Number) : []) {
      const cmd = fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0')
      if ((cmd[0] ?? '').endsWith('fusermount') && cmd.includes(mnt)) out.push(k)
    }
  }
  return out
}

async function killAndWait(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL')
  await waitFor(`pid ${pid} to die`, () => pidDead(pid), 10_000, 10)
}

test(`agent kill -9 during writes (${KILLS} times): fsync'd data survives and vstor mount takes the mountpoint back`, async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  const fig = figures('agent kill -9 during writes')
  const rand = rng(Number(process.env.VSTOR_SEED) || 0xa9e)
  await v.startController()
  await v.addDevice(64 * MiB, 'd0', { fill: 0xa5 })
  await v.run(['disk', 'create', 'thin', '--size', '24M', '--thin'])
  await v.run(['disk', 'create', 'thick', '--size', '16M'])
  await v.mount()
  const disks = [
    { name: 'thin', ledger: new Ledger(1, 24 * MiB), seq: 0 },
    { name: 'thick', ledger: new Ledger(2, 16 * MiB), seq: 0 },
  ]
  for (let k = 1; k <= KILLS; k++) {
    const pid = await agentPid(v)
    const killAt = 5 + Math.floor(rand() * 60)
    let acked = 0
    let killed: Promise<void> | null = null
    const runs: WriterRun[] = disks.map((d) => {
      const count = 400
      const r = startWriter(
        v,
        d.ledger,
        {
          image: v.image(d.name),
          count,
          seqBase: d.seq,
          seed: Math.floor(rand() * 2 ** 31),
          fsyncEvery: 1 + Math.floor(rand() * 8),
          maxErrors: 3,
        },
        () => void (++acked >= killAt && (killed ??= killAndWait(pid))),
      )
      d.seq += count
      return r
    })
    await Promise.all(runs.map((r) => r.done))
    assert.ok(killed, `kill ${k}: the writers finished before ${killAt} writes`)
    await killed
    fig.failedWrites += runs.reduce((n, r) => n + r.errors.length, 0)
    // No umount by hand: the mount may still be there (dead) or already gone (auto_unmount).
    await v.mount()
    for (const d of disks) {
      const verdict = await verifyDisk(v, d.name, d.ledger)
      addVerdict(fig, verdict)
      assert.equal(verdict.staleBytes, 0, `kill ${k}, disk ${d.name}: stale bytes\n${verdict.problems.join('\n')}`)
      assert.equal(verdict.lostDurable, 0, `kill ${k}, disk ${d.name}: lost fsync'd writes\n${verdict.problems.join('\n')}`)
    }
    fig.cycles++
  }
  for (const d of disks) {
    fig.writes += d.ledger.writes
    fig.fsyncs += d.ledger.fsyncs
  }
  report(t, fig)
})

test('vstor unmount of a dead mount removes it and says so; with nothing mounted it is NOT_MOUNTED', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  await v.startController()
  await v.addDevice(24 * MiB, 'd0')
  await v.run(['disk', 'create', 'a', '--size', '8M'])
  await v.mount()
  await qemuIoOk(v.image('a'), ['write -P 0x3c 0 1M', 'flush'])
  const pid = await agentPid(v)
  // The agent dies, and fuse-native's auto_unmount helper with it if there is one (an OOM kill, a
  // kill of everything): nothing unmounts, the mount answers ENOTCONN.
  for (const h of unmountHelpers(pid, v.mnt)) await killAndWait(h)
  await killAndWait(pid)
  const err = await fs.promises.stat(v.image('a')).then(
    () => null,
    (e: NodeJS.ErrnoException) => e.code,
  )
  // the kernel says ENOTCONN, or ECONNABORTED when requests were in flight as the daemon died
  assert.ok(err === 'ENOTCONN' || err === 'ECONNABORTED', `a dead mount answers ENOTCONN, not ${String(err)}`)
  assert.equal(isMounted(v.mnt), true)

  const r = await v.run<{ unmounted: boolean; mountpoint: string; dead: boolean }>(['unmount', v.mnt], { json: true })
  assert.deepEqual(r.json, { unmounted: true, mountpoint: v.mnt, dead: true })
  assert.equal(isMounted(v.mnt), false)
  const again = await v.run(['unmount', v.mnt], { expectFail: true, json: true })
  assert.equal(again.code, 1)
  assert.equal((again.json as { error: { code: string } }).error.code, 'NOT_MOUNTED')

  // Plain output says it too.
  await v.mount()
  const pid2 = await agentPid(v)
  for (const h of unmountHelpers(pid2, v.mnt)) await killAndWait(h)
  await killAndWait(pid2)
  const plain = await v.run(['unmount', v.mnt])
  assert.match(plain.stdout, new RegExp(`the agent for ${v.mnt} was not running; removed its dead mount`))

  await v.mount()
  await qemuIoOk(v.image('a'), ['read -P 0x3c 0 1M'])
})
