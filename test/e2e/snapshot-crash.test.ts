// Issue 11 end to end: the controller is SIGKILLed while writers make first
// writes into shared units (every write a copy-on-write fault, each one
// fdatasync'ed), then started again; the faults wait through the outage and
// complete. Afterwards, and after a second crash with a fresh agent, every
// acknowledged and fsync'ed write reads back on the origin, the snapshot
// still reads what it had (nothing shared was freed), the tables account
// every byte with consistent reference counts (helpers/spacecheck.ts), and
// deleting both disks gives back the whole pool (nothing leaked).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, pidDead, qemuIoOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { checkAgainstList, checkDbFile } from '../helpers/spacecheck'

const UNITS = 64
const OLD = 0x5a
const AT = 8192 // where in each unit the writers write 4 KiB
const pat = (u: number): number => 0x80 | (u & 0x7f)

/** Three writers over interleaved units: 4 KiB into each unit, fdatasync, next. Units done go to `done`. */
async function writers(img: string, done: Set<number>): Promise<void> {
  const fh = await fs.promises.open(img, 'r+')
  try {
    await Promise.all(
      [0, 1, 2].map(async (k) => {
        for (let u = k; u < UNITS; u += 3) {
          await fh.write(Buffer.alloc(4096, pat(u)), 0, 4096, u * MiB + AT)
          await fh.datasync()
          done.add(u)
        }
      }),
    )
  } finally {
    await fh.close()
  }
}

/** The origin: old bytes with each unit's 4 KiB; the snapshot: old bytes only. */
async function checkData(v: Instance): Promise<void> {
  const want = Buffer.alloc(UNITS * MiB, OLD)
  for (let u = 0; u < UNITS; u++) want.fill(pat(u), u * MiB + AT, u * MiB + AT + 4096)
  const o = await fs.promises.readFile(v.image('o'))
  const bad = [...Array(UNITS).keys()].filter((u) => !o.subarray(u * MiB, (u + 1) * MiB).equals(want.subarray(u * MiB, (u + 1) * MiB)))
  assert.deepEqual(bad, [], 'origin units that do not read old bytes plus their write')
  const snap = await fs.promises.readFile(v.image('s'))
  assert.ok(snap.equals(Buffer.alloc(UNITS * MiB, OLD)), 'the snapshot changed')
}

async function checkTables(v: Instance, name: string): Promise<void> {
  const file = path.join(v.dir, name)
  await v.run(['controller', 'backup', file])
  const report = await checkDbFile(file)
  assert.deepEqual([...report.problems, ...checkAgainstList(report, await v.deviceList())], [])
}

test('controller SIGKILLed during copy-on-write faults: counts stay consistent, fsynced data survives', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(256 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', `${UNITS}M`])
  await v.mount()
  await qemuIoOk(v.image('o'), [`write -P ${OLD} 0 ${UNITS * MiB}`])
  await v.run(['disk', 'snapshot', 'o', 's'])
  const capacity = (await v.deviceList())[0]!.capacity

  const pid = (await v.status()).controller.pid
  const done = new Set<number>()
  const writing = writers(v.image('o'), done)
  writing.catch(() => undefined)
  await waitFor('a few copy-on-write faults answered', () => done.size >= 6, 30_000, 5)
  process.kill(pid, 'SIGKILL')
  const atKill = done.size
  await waitFor('the controller gone', () => pidDead(pid), 10_000, 10)
  assert.ok(atKill < UNITS, 'every write finished before the kill')
  await v.startController()
  await writing // the faults waited through the outage
  assert.equal(done.size, UNITS)

  await checkData(v)
  await checkTables(v, 'after-crash.db')
  const o = (await v.diskList()).find((d) => d.name === 'o')!
  assert.deepEqual([o.exclusive, o.shared], [UNITS * MiB, 0], 'every unit of the origin was copied once')

  await t.test('a second crash and a fresh agent: the fsynced writes are in the table', async () => {
    await v.killController()
    await v.startController()
    await v.unmount()
    await v.mount()
    await checkData(v)
    await checkTables(v, 'after-second-crash.db')
  })

  await t.test('deleting both disks gives back the whole pool; the stopped database agrees', async () => {
    await v.run(['disk', 'delete', 'o'])
    await v.run(['disk', 'delete', 's'])
    await waitFor('the pool whole again', async () => {
      const d = (await v.deviceList())[0]!
      return d.free === capacity && d.quarantined === 0
    })
    await v.stopController()
    const report = await checkDbFile(path.join(v.dataDir, 'vstor.db'))
    assert.deepEqual(report.problems, [])
    assert.deepEqual([report.devices[0]!.mapped, report.devices[0]!.quarantined], [0, 0])
  })
})

/** A thread of pid stopped in fdatasync(2) on an fd open on `file`. */
function inFdatasyncOn(pid: number, file: string): boolean {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const sc = fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ')
    if (sc[0] !== '75') continue // fdatasync on x86_64
    if (fs.readlinkSync(`/proc/${pid}/fd/${Number(sc[1])}`) === file) return true
  }
  return false
}

test('a crash between copying a unit and committing it leaves no copied bytes in clean space', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  const dev = await v.addDevice(64 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', '8M'])
  await v.mount(['--fault-timeout', '1s'])
  await qemuIoOk(v.image('o'), [`write -P ${OLD} 0 8M`])
  await v.run(['disk', 'snapshot', 'o', 's'])

  // Every fdatasync of the controller waits 1.5 s (strace fault injection): the copy's, before its commit, too.
  const pid = (await v.status()).controller.pid
  const strace = v.background('strace', [
    '-f',
    '-qq',
    '-p',
    String(pid),
    '-e',
    'trace=fdatasync',
    '-e',
    'inject=fdatasync:delay_enter=1500000',
    '-o',
    '/dev/null',
  ])
  const traced = (): boolean =>
    fs
      .readdirSync(`/proc/${pid}/task`)
      .every((tid) => /^TracerPid:\s*[1-9]/m.test(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')))
  await waitFor('strace attached', () => traced() || strace.child.exitCode !== null, 10_000, 10)
  assert.equal(strace.child.exitCode, null, 'strace did not start')

  const writer = v.background('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 4096 4k', v.image('o')])
  await waitFor('the copy written, its fdatasync held', () => inFdatasyncOn(pid, dev), 30_000, 5)
  process.kill(pid, 'SIGKILL')
  await waitFor('the controller gone', () => pidDead(pid), 10_000, 10)
  await strace.done
  const w = await writer.done // no controller within --fault-timeout: the write fails
  assert.match(w.stdout + w.stderr, /Input\/output error/)

  await v.startController()
  await checkTables(v, 'after-crash.db')
  await qemuIoOk(v.image('o'), [`read -P ${OLD} 0 8M`])
})
