// Jobs and fio verification for the move, evacuate and resize tests.
//
// Invariants:
//   * every fio run here writes crc32c headers every 4 KiB (verify_interval),
//     so a read-verify pass with any block size checks every 4 KiB of the
//     disk for a torn or misdirected write; a writer's own verify phase also
//     checks each block holds its latest write (fio compares the header's
//     seed), which catches lost writes;
//   * a fio failure is never swallowed: the run's output goes into the
//     assertion message;
//   * polling the controller goes through one socket connection (the CLI
//     costs ~0.3 s per call), closed in t.after.

import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { connect, type Connection } from '../../src/protocol/connection'
import type { DiskMap, JobInfo } from '../../src/protocol/messages'
import { sh, waitFor, type Instance, type ShResult } from './instance'
import { deviceOverlaps, mapProblem } from './map'

const VERIFY = ['--verify=crc32c', '--verify_interval=4k', '--verify_fatal=1', '--verify_state_save=0']
const BAD = /verify: bad|verify failed|err=\s*[1-9]|fio: (?!terminating)/

function fioArgs(img: string, size: number, extra: string[]): string[] {
  return [`--filename=${img}`, `--size=${size}`, '--ioengine=libaio', '--direct=1', ...VERIFY, ...extra]
}

function fioOk(what: string, r: ShResult): ShResult {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stdout}\n${r.stderr}`)
  assert.doesNotMatch(r.stdout + r.stderr, BAD, `${what} reported errors:\n${r.stdout}\n${r.stderr}`)
  return r
}

/** Write the whole image sequentially with verify headers, then verify it. */
export async function fioFill(img: string, size: number): Promise<void> {
  fioOk(
    'fio fill',
    await sh('fio', ['--name=fill', '--rw=write', '--bs=1m', '--iodepth=4', ...fioArgs(img, size, [])], { timeoutMs: 300_000 }),
  )
}

/** One pass of the writer: randwrite, bssplit 4k/64k/1m at QD16, then fio verifies every block it wrote. */
export async function fioRandWrite(img: string, size: number): Promise<ShResult> {
  const args = ['--name=mix', '--rw=randwrite', '--bssplit=4k/50:64k/30:1m/20', '--iodepth=16', '--randrepeat=0', '--do_verify=1']
  return fioOk('fio randwrite+verify', await sh('fio', [...args, ...fioArgs(img, size, [])], { timeoutMs: 300_000 }))
}

/**
 * Four writer threads (psync, direct: with FOPEN_PARALLEL_DIRECT_WRITES the kernel runs them in
 * parallel), each randwrite with the mixed bssplit over its own quarter, each verifying its writes.
 */
export async function fioRandWriteThreads(img: string, size: number): Promise<ShResult> {
  const q = size / 4
  const global = ['--rw=randwrite', '--bssplit=4k/50:64k/30:1m/20', '--randrepeat=0', '--do_verify=1', '--ioengine=psync']
  // four jobs by name, not numjobs: fio then knows their ranges are disjoint (and does not warn)
  const jobs = [0, 1, 2, 3].flatMap((i) => [`--name=mix${i}`, `--offset=${i * q}`])
  const run = await sh('fio', [...fioArgs(img, q, []), ...global, ...jobs], { timeoutMs: 300_000 })
  return fioOk('fio 4-thread randwrite+verify', run)
}

/** A separate read-verify pass over the whole image (every 4 KiB header and checksum). */
export async function fioReadVerify(img: string, size: number): Promise<ShResult> {
  return sh('fio', ['--name=check', '--rw=read', '--bs=1m', '--iodepth=4', ...fioArgs(img, size, [])], { timeoutMs: 300_000 })
}

export async function fioReadVerifyOk(img: string, size: number): Promise<void> {
  fioOk(`fio read-verify of ${img}`, await fioReadVerify(img, size))
}

/** fioRandWrite over and over until stop() (teardown stops it too); stop() resolves with the number of passes (each verified). */
export function fioLoop(v: Instance, img: string, size: number): { stop: () => Promise<number>; passes: () => number } {
  let stopping = false
  let n = 0
  const done = (async () => {
    while (!stopping) {
      await fioRandWrite(img, size)
      n++
    }
    return n
  })()
  done.catch(() => {}) // reported by stop()
  v.onTeardown(async () => {
    stopping = true
    await done.catch(() => {})
  })
  return {
    stop: async () => {
      stopping = true
      return done
    },
    passes: () => n,
  }
}

/** A CLI-role connection to the instance's controller (reconnects when the controller restarted). */
export function controllerClient(t: TestContext, v: Instance): { call: Connection['call'] } {
  let conn: Connection | null = null
  t.after(() => conn?.close())
  const get = async (): Promise<Connection> => {
    if (conn && !conn.closed) return conn
    conn = (await connect(v.socket, { role: 'cli', pid: process.pid })).conn
    return conn
  }
  return { call: (async (method: never, params: never) => (await get()).call(method, params)) as Connection['call'] }
}

export async function jobList(v: Instance): Promise<JobInfo[]> {
  return (await v.run<JobInfo[]>(['job', 'list'], { json: true })).json
}

export async function jobInfo(v: Instance, id: number): Promise<JobInfo> {
  const j = (await jobList(v)).find((x) => x.id === id)
  assert.ok(j, `job ${id} is not in job list`)
  return j
}

/** Start a job with `vstor ... --json` (no --wait) and return it. */
export async function startJob(v: Instance, args: string[]): Promise<JobInfo> {
  const j = (await v.run<JobInfo>(args, { json: true })).json
  assert.equal(j.state, 'running', `${args.join(' ')}: ${JSON.stringify(j)}`)
  return j
}

/** `vstor job wait ID`: must exit 0 with the job done. */
export async function jobWaitDone(v: Instance, id: number): Promise<JobInfo> {
  const r = await v.run<JobInfo>(['job', 'wait', String(id)], { json: true, timeoutMs: 300_000 })
  assert.equal(r.json.state, 'done', JSON.stringify(r.json))
  assert.equal(r.json.done, r.json.total)
  return r.json
}

/** Poll until the disk's map has a no-write extent (a move fenced a chunk). */
export async function waitFenced(v: Instance, disk: string): Promise<DiskMap> {
  return waitFor(`a fenced (no-write) chunk in disk ${disk}`, async () => {
    const m = await v.diskMap(disk)
    return m.extents.some((e) => e.noWrite) ? m : null
  })
}

/** Every disk's map tiles it, no physical range is owned twice, and every device's used space is what the maps and its quarantine hold (call with no job running). Returns the maps of `disks`. */
export async function assertSpaceConsistent(v: Instance, disks: string[]): Promise<DiskMap[]> {
  const all = await Promise.all((await v.diskList()).map((d) => v.diskMap(d.name)))
  for (const m of all) assert.equal(mapProblem(m), '', `disk ${m.name}`)
  assert.deepEqual(deviceOverlaps(all), [], 'a physical range is owned twice')
  const mapped = new Map<string, number>()
  for (const m of all) for (const e of m.extents) if (e.device !== null) mapped.set(e.device, (mapped.get(e.device) ?? 0) + e.length)
  for (const d of await v.deviceList()) {
    assert.equal(d.used, (mapped.get(d.name) ?? 0) + d.quarantined, `device ${d.name}: used ${d.used} is not mapped + quarantined`)
  }
  return disks.map((name) => {
    const m = all.find((x) => x.name === name)
    assert.ok(m, `no disk ${name}`)
    return m
  })
}

/** Devices a disk's extents lie on. */
export function devicesOf(m: DiskMap): string[] {
  return [...new Set(m.extents.map((e) => e.device).filter((d): d is string => d !== null))].sort()
}

/** SIGSTOP a pid now; SIGCONT it at the start of teardown (or by the returned function). */
export function pause(v: Instance, pid: number): () => void {
  process.kill(pid, 'SIGSTOP')
  const cont = (): void => {
    try {
      process.kill(pid, 'SIGCONT')
    } catch {
      // gone already
    }
  }
  v.onTeardown(cont)
  return cont
}
