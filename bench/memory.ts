// Agent memory per disk and per extent: resident set (VmRSS, and RssAnon) of a `vstor mount` agent
// (the default front end, libfuse3 with the native mapped path) on its own controller and pool:
//   1. one agent with 1 small thin disk, then the same agent after 100 more disks are created;
//   2. a fresh agent with those 101 disks and a 1 TiB thin disk of 1 extent, then (controller stopped,
//      the 1 TiB disk's table written into SQLite as in snap.ts: ~100k extents, half mapped) a fresh
//      agent again.
// bytes/disk = (1b - 1a) / 100 and bytes/extent = (2b - 2a) / (extents - 1).
//
// RSS, not the JS heap: the table lives in typed arrays (off the V8 heap) and the native mapped path
// keeps its own C copy of each disk's mapped extents, and both are what the host pays. Garbage (the
// decoded table.load, the native copy's staging arrays) and a grown young generation stay in RSS
// until V8's memory reducer runs, which it does ~8 s after a full GC when the process is idle (seen:
// 5-7 MiB less at every point). So the agent is started with a preload (NODE_OPTIONS --require) that,
// on SIGUSR2, runs a full GC and writes process.memoryUsage(); each point is: GC, wait REDUCER_MS,
// then three rounds of GC + RSS, medians. The JS side (heapUsed + external) is reported too: RSS
// minus it is the native copy, the code and what the allocators keep.
//
// Invariants: everything (controller, agents, mounts, the temp dir) is torn down before runMemory
// returns, also on error, and is registered with the run's Cleanup for signals.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LABEL_AREA, UNIT } from '../src/config'
import { pidAlive } from '../src/daemon'
import { connect, type Connection } from '../src/protocol/connection'
import type { Status } from '../src/protocol/messages'
import { run } from './fio'
import { median } from './report'
import { writeFragmentedTable } from './snap'
import { Cleanup, forceUnmount, sizeOf, sleep, sparse, VSTOR_BIN, waitFor } from './targets'

const MiB = 2 ** 20
const TiB = 2 ** 40
const DISKS = 100
/** V8's memory reducer acts 8 s after a full GC (kLongDelayMs), if the isolate is idle. */
const REDUCER_MS = 10_000

export interface MemoryPoint {
  what: string
  disks: number
  extents: number // in all the agent's tables
  rss: number // bytes, VmRSS, after a full GC
  rssAnon: number // bytes, RssAnon
  heapUsed: number // bytes, process.memoryUsage() in the agent after that GC
  external: number // bytes (array buffers included)
  samples: number[] // VmRSS, one after each GC
}
export interface MemoryResult {
  frontend: string
  points: MemoryPoint[]
  bytesPerDisk: number
  bytesPerExtent: number
  anonBytesPerDisk: number
  anonBytesPerExtent: number
  /** heapUsed + external */
  jsBytesPerDisk: number
  jsBytesPerExtent: number
}

/** Loaded into the agent (NODE_OPTIONS --require): on SIGUSR2, a full GC, then memoryUsage() into <dir>/<pid>.json. */
const PRELOAD = `'use strict'
const fs = require('node:fs')
require('node:v8').setFlagsFromString('--expose-gc')
const gc = require('node:vm').runInNewContext('gc')
process.on('SIGUSR2', () => {
  gc()
  const out = require('node:path').join(process.env.VSTOR_BENCH_MEM_DIR, process.pid + '.json')
  fs.writeFileSync(out + '.tmp', JSON.stringify(process.memoryUsage()))
  fs.renameSync(out + '.tmp', out)
})
`

/** VmRSS and RssAnon of pid, in bytes. */
function rssOf(pid: number): { rss: number; anon: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), anon: kb('RssAnon') }
}

class Pool {
  readonly socket: string
  readonly dataDir: string
  readonly mnt: string
  private conn: Connection | null = null

  constructor(readonly dir: string) {
    this.socket = path.join(dir, 'run', 'vstor.sock')
    this.dataDir = path.join(dir, 'data')
    this.mnt = path.join(dir, 'mnt')
  }

  async cli(args: string[]): Promise<string> {
    const r = await run(process.execPath, [VSTOR_BIN, ...args, '--socket', this.socket, '--data-dir', this.dataDir], 120_000)
    if (r.code !== 0) throw new Error(`vstor ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    return r.stdout
  }

  async client(): Promise<Connection> {
    if (this.conn && !this.conn.closed) return this.conn
    this.conn = (await connect(this.socket, { role: 'cli', pid: process.pid })).conn
    return this.conn
  }

  async status(): Promise<Status> {
    return (await (await this.client()).call('status', {}, { timeoutMs: 60_000 })) as Status
  }

  async startController(): Promise<void> {
    await this.cli(['controller', 'start'])
  }

  async stopController(): Promise<void> {
    const pid = (await this.status().catch(() => null))?.controller.pid
    this.conn?.close()
    this.conn = null
    await this.cli(['controller', 'stop']).catch(() => undefined)
    if (pid && !(await waitFor(() => !pidAlive(pid), 10_000))) process.kill(pid, 'SIGKILL')
  }

  /** Mount an agent; its pid and front end once every image is visible. */
  async mount(): Promise<{ pid: number; frontend: string }> {
    const preload = path.join(this.dir, 'preload.js')
    await fs.promises.writeFile(preload, PRELOAD)
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VSTOR_BENCH_MEM_DIR: this.dir,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require=${preload}`.trim(),
    }
    delete env.VSTOR_NATIVE_MAP
    const r = await run(process.execPath, [VSTOR_BIN, 'mount', this.mnt, '--socket', this.socket, '--data-dir', this.dataDir], 120_000, env)
    if (r.code !== 0) throw new Error(`vstor mount failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    const agent = (await this.status()).agents.find((a) => a.connected && a.mountpoint === this.mnt)
    if (!agent) throw new Error(`no connected agent at ${this.mnt}`)
    return { pid: agent.pid, frontend: agent.frontend ?? 'unknown' }
  }

  async unmount(pid?: number): Promise<void> {
    await this.cli(['unmount', this.mnt]).catch(() => undefined)
    if (pid && !(await waitFor(() => !pidAlive(pid), 10_000))) process.kill(pid, 'SIGKILL')
    await forceUnmount(this.mnt)
  }
}

interface Usage {
  heapUsed: number
  external: number
}

/** A full GC in the agent (the preload's SIGUSR2), then its memoryUsage() and RSS. */
async function collect(dir: string, pid: number): Promise<Usage & { rss: number; anon: number }> {
  const out = path.join(dir, `${pid}.json`)
  await fs.promises.rm(out, { force: true })
  process.kill(pid, 'SIGUSR2')
  if (!(await waitFor(() => fs.existsSync(out), 10_000))) throw new Error(`agent ${pid} did not answer SIGUSR2 (preload not loaded?)`)
  await sleep(100) // pages freed by the GC leave RSS as it returns them
  const usage = JSON.parse(await fs.promises.readFile(out, 'utf8')) as Usage
  return { ...usage, ...rssOf(pid) }
}

/** After `settleMs`: a GC, the memory reducer's delay, then medians of three GC-then-measure rounds. */
async function sample(dir: string, pid: number, what: string, disks: number, extents: number, settleMs: number): Promise<MemoryPoint> {
  await sleep(settleMs)
  await collect(dir, pid)
  await sleep(REDUCER_MS)
  const got: (Usage & { rss: number; anon: number })[] = []
  for (let i = 0; i < 3; i++) {
    got.push(await collect(dir, pid))
    await sleep(300)
  }
  const med = (f: (u: Usage & { rss: number; anon: number }) => number): number => median(got.map(f))
  const p = { what, disks, extents, rss: med((u) => u.rss), rssAnon: med((u) => u.anon), heapUsed: med((u) => u.heapUsed) }
  process.stderr.write(`bench: memory: ${what}: VmRSS ${(p.rss / MiB).toFixed(1)} MiB\n`)
  return { ...p, external: med((u) => u.external), samples: got.map((u) => u.rss) }
}

export async function runMemory(cleanup: Cleanup, quick: boolean, extents = 100_000): Promise<MemoryResult> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-bench-mem-'))
  const pool = new Pool(dir)
  const local = new Cleanup()
  local.add('temp dir', () => fs.promises.rm(dir, { recursive: true, force: true }))
  cleanup.add('memory benchmark', () => local.run())
  const settleMs = quick ? 500 : 1000
  try {
    await fs.promises.mkdir(pool.mnt, { recursive: true })
    await fs.promises.mkdir(pool.dataDir, { recursive: true })
    const dev = path.join(dir, 'dev0.img')
    await sparse(dev, LABEL_AREA + (extents + 8) * UNIT)
    local.add('controller', () => pool.stopController())
    await pool.startController()
    await pool.cli(['device', 'add', dev, '--name', 'd0'])
    const conn = await pool.client()
    await conn.call('disk.create', { name: 'm0', size: 64 * MiB, thin: true })
    let pid = 0
    local.add('agent', () => pool.unmount(pid))
    const points: MemoryPoint[] = []

    // 1. one agent: 1 disk, then 101
    let agent = await pool.mount()
    pid = agent.pid
    points.push(await sample(dir, pid, '1 disk', 1, 1, settleMs))
    for (let i = 1; i <= DISKS; i++) await conn.call('disk.create', { name: `m${i}`, size: 64 * MiB, thin: true })
    const last = path.join(pool.mnt, `m${DISKS}.img`)
    if (!(await waitFor(async () => (await sizeOf(last)) === 64 * MiB, 20_000))) throw new Error(`${last} did not appear`)
    points.push(await sample(dir, pid, `+${DISKS} disks`, DISKS + 1, DISKS + 1, settleMs))

    // 2. fresh agents: the 1 TiB disk with 1 extent, then with `extents`
    await pool.unmount(pid)
    await conn.call('disk.create', { name: 'big', size: TiB, thin: true })
    agent = await pool.mount()
    pid = agent.pid
    points.push(await sample(dir, pid, `fresh agent, ${DISKS + 2} disks`, DISKS + 2, DISKS + 2, settleMs))
    await pool.unmount(pid)
    await pool.stopController()
    await writeFragmentedTable(pool.dataDir, 'big', 'd0', extents)
    await pool.startController()
    const big = (await pool.status()).disks.find((d) => d.name === 'big')
    if (!big) throw new Error('the 1 TiB disk is gone after the controller restart')
    agent = await pool.mount()
    pid = agent.pid
    points.push(
      await sample(
        dir,
        pid,
        `fresh agent, ${DISKS + 2} disks, one of ${big.extents} extents`,
        DISKS + 2,
        DISKS + 1 + big.extents,
        settleMs,
      ),
    )
    await pool.unmount(pid)

    const [a, b, c, d] = points as [MemoryPoint, MemoryPoint, MemoryPoint, MemoryPoint]
    const js = (p: MemoryPoint): number => p.heapUsed + p.external
    const perExtent = (k: 'rss' | 'rssAnon'): number => (d[k] - c[k]) / (d.extents - c.extents)
    return {
      frontend: agent.frontend,
      points,
      bytesPerDisk: (b.rss - a.rss) / DISKS,
      bytesPerExtent: perExtent('rss'),
      anonBytesPerDisk: (b.rssAnon - a.rssAnon) / DISKS,
      anonBytesPerExtent: perExtent('rssAnon'),
      jsBytesPerDisk: (js(b) - js(a)) / DISKS,
      jsBytesPerExtent: (js(d) - js(c)) / (d.extents - c.extents),
    }
  } finally {
    await local.run()
  }
}

const kib = (b: number): string => (b / 1024).toFixed(1)
const mib = (b: number): string => (b / MiB).toFixed(1)

export function memoryLines(m: MemoryResult | { error: string } | undefined): string[] {
  if (!m) return []
  if ('error' in m) return [`agent memory: FAILED (${m.error})`]
  const pts = m.points.map((p) => `${p.what} ${mib(p.rss)} MiB`).join('; ')
  return [
    `agent memory (${m.frontend}, VmRSS after a full GC and V8's memory reducer): ${kib(m.bytesPerDisk)} KiB/disk, ${m.bytesPerExtent.toFixed(1)} B/extent ` +
      `(RssAnon ${kib(m.anonBytesPerDisk)} KiB/disk, ${m.anonBytesPerExtent.toFixed(1)} B/extent; JS heap + external ` +
      `${kib(m.jsBytesPerDisk)} KiB/disk, ${m.jsBytesPerExtent.toFixed(1)} B/extent); ${pts}`,
  ]
}
