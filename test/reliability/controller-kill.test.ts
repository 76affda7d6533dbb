// Issue 8: the controller is SIGKILLed while agents allocate thin space, over
// and over (30 cycles here, 300 under `npm run torture`), on a device whose
// every byte held a pattern before `device add` and that cannot be scrubbed,
// with disks deleted and created each cycle so freed space (another disk's
// data) is handed out again.
//
// Invariants checked after every cycle: no disk ever reads a byte it did not
// write (stale pattern or another disk's block) — every 4 KiB block reads as
// zeros or as this disk's own block for that offset; no write acked before a
// completed fsync is lost; an online backup of the database passes
// PRAGMA integrity_check; every map tiles its disk, stays inside its
// device's data area, and no physical range is mapped twice.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { MiB, pidDead, vstorInstance, waitFor } from '../helpers/instance'
import { Ledger } from './blocks'
import { client, integrityProblem, tableProblems } from './client'
import { nbdDevice } from './nbd'
import { rng } from './writer'
import { addVerdict, figures, report, scale, startWriter, verifyDisk, type WriterRun } from './writers'

const CYCLES = Number(process.env.VSTOR_CYCLES) || scale(30, 300)
const DISK = 24 * MiB
const LIVE = 3

test(`controller kill -9 during thin allocation: ${CYCLES} cycles, no stale bytes, no lost fsync'd writes`, async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  const fig = figures('controller kill -9 during thin allocation')
  const rand = rng(Number(process.env.VSTOR_SEED) || 0x5eed)
  // The pattern is in the file before it joins the pool: the bytes no disk may ever show. Trims fail
  // (nbdkit error filter), so the scrubber never cleans anything: every allocation takes dirty space
  // (the pattern, or a deleted disk's blocks) and must zero it before the mapping commits. The pool
  // is tight (room for the live disks and 8 MiB), so freed space is handed out again at once.
  const dev = await nbdDevice(v, 'd0', MiB + LIVE * DISK + 8 * MiB, {
    filters: ['error'],
    params: ['error-trim=EIO', 'error-trim-rate=100%'],
    fill: 0xa5,
  })
  await v.startController()
  await v.run(['device', 'add', dev.file, '--name', 'd0'])
  const c = client(v)
  const disks: { name: string; ledger: Ledger; seq: number }[] = []
  const tally = (d: { ledger: Ledger }): void => {
    fig.writes += d.ledger.writes
    fig.fsyncs += d.ledger.fsyncs
  }
  let tag = 0
  const create = async (): Promise<void> => {
    tag++
    await c.call('disk.create', { name: `t${tag}`, size: DISK, thin: true })
    disks.push({ name: `t${tag}`, ledger: new Ledger(tag, DISK), seq: 0 })
  }
  for (let i = 0; i < LIVE; i++) await create()
  await v.mount()
  const copy = path.join(v.dir, 'backup.db')

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const pid = (await c.call('status', {})).controller.pid
    // Kill when the writers together have this many writes acked: early ones are mostly first writes.
    const killAt = 1 + Math.floor(rand() * 30)
    let acked = 0
    let killed: Promise<void> | null = null
    const kill = (): void => {
      killed ??= (async () => {
        process.kill(pid, 'SIGKILL')
        await waitFor('the controller to die', () => pidDead(pid), 10_000, 10)
      })()
    }
    const runs: WriterRun[] = disks.map((d) => {
      const count = 24
      const run = startWriter(
        v,
        d.ledger,
        { image: v.image(d.name), count, seqBase: d.seq, seed: Math.floor(rand() * 2 ** 31), fsyncEvery: 2 + Math.floor(rand() * 6) },
        () => ++acked >= killAt && kill(),
      )
      d.seq += count
      return run
    })
    await Promise.race([Promise.all(runs.map((r) => r.done)), waitFor('the kill point', () => killed !== null, 60_000, 5)])
    kill()
    await killed
    await v.startController()
    // A first write waits for the controller (up to --fault-timeout): none fails, and every fsync returns 0.
    await Promise.all(runs.map((r) => r.done))
    const errors = runs.flatMap((r) => r.errors)
    fig.failedWrites += errors.length
    assert.deepEqual(errors, [], `cycle ${cycle}: writes or fsyncs failed`)

    for (const d of disks) {
      const verdict = await verifyDisk(v, d.name, d.ledger)
      addVerdict(fig, verdict)
      assert.equal(verdict.staleBytes, 0, `cycle ${cycle}, disk ${d.name}: stale bytes\n${verdict.problems.join('\n')}`)
      assert.equal(verdict.lostDurable, 0, `cycle ${cycle}, disk ${d.name}: lost fsync'd writes\n${verdict.problems.join('\n')}`)
    }
    assert.equal(await integrityProblem(c, copy), '', `cycle ${cycle}`)
    assert.deepEqual(await tableProblems(c), [], `cycle ${cycle}: table invariants`)
    fig.cycles++

    // Rotate: the oldest disk goes (its blocks become free space another disk gets), a new one comes.
    const old = disks.shift()!
    tally(old)
    await waitFor(`${old.name} closed everywhere`, async () => {
      const info = (await c.call('disk.list', {})).find((x) => x.name === old.name)
      return info?.openBy.length === 0
    })
    await c.call('disk.delete', { name: old.name })
    await create()
  }
  disks.forEach(tally)
  report(t, { ...fig, disks: tag })
})
