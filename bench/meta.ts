// Metadata micro-benchmarks: table lookups, full table push over the socket, thin first-write
// fault round trip, controller request latency, push fan-out to many agents and the fault round
// trip over TLS (remote.ts), snapshot time against extent count and the copy-on-write fault round trip (snap.ts),
// the agent's memory per disk and per extent (memory.ts).
//
// Invariants:
//   * each section is independent: a failure is recorded as { error } in its slot and the others
//     still run (the parts are written in parallel; a missing one must not sink the whole run);
//   * every socket, server and disk created here is closed/deleted before the function returns.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { LABEL_AREA, PROTOCOL_VERSION, UNIT } from '../src/config'
import { connect, listen, type Connection } from '../src/protocol/connection'
import { Table, type Extent } from '../src/table/table'
import { run, runUnitWrites } from './fio'
import { runMemory, type MemoryResult } from './memory'
import { runRemote, type RemoteResult } from './remote'
import { runCowFaults, runSnapshotScale, type CowResult, type ScalePoint } from './snap'
import { runTableBench, type TableBench } from './table'
import { median, percentile } from './report'
import { VSTOR_BIN, type Cleanup } from './targets'
import type { Vstor } from './vstor'

export interface Failed {
  error: string
}
export interface PushResult {
  extents: number
  payloadBytes: number
  encodeMs: number
  decodeMs: number
  totalMs: number // encode + send + decode on the other side + ack (median of runs)
  runsMs: number[]
}
export interface FaultResult {
  writes: number
  p50us: number
  p99us: number
  meanUs: number
  mappedP50us: number // the same writes again, into the now-mapped units: the no-fault baseline
  mappedP99us: number
}
export interface CliResult {
  requests: number
  statusP50ms: number
  statusP99ms: number
  diskListRunsMs: number[]
  diskListMedianMs: number
}
export interface MetaResult {
  table: TableBench | Failed
  push: PushResult | Failed
  fault: FaultResult | Failed
  cli: CliResult | Failed
  /** Push fan-out and fault round trip over TLS (bench/remote.ts); absent in older results. */
  remote?: RemoteResult | Failed
  /** Snapshot of a 1 TiB thin disk at 1k, 10k and 100k extents. */
  snapshot?: ScalePoint[] | Failed
  /** A 4k write into each shared unit of a snapshotted disk: one 1 MiB copy each. */
  cow?: CowResult | Failed
  /** Agent RSS per disk and per extent (bench/memory.ts). */
  memory?: MemoryResult | Failed
}

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | Failed> {
  process.stderr.write(`bench: meta: ${what}…\n`)
  try {
    return await fn()
  } catch (err) {
    const message = (err as Error).message ?? String(err)
    process.stderr.write(`bench: meta: ${what} failed: ${message}\n`)
    return { error: message }
  }
}

/** A table of n 1 MiB extents that cannot merge (each one skips a unit on the device). */
export function fragmentedTable(n: number): Table {
  const extents: Extent[] = []
  for (let i = 0; i < n; i++) extents.push({ vstart: i * UNIT, length: UNIT, device: 1, pstart: LABEL_AREA + 2 * i * UNIT, flags: 0 })
  return new Table(n * UNIT, extents, 1)
}

/** Encode a 1M-extent table, send it as a table.load over a Unix socket, decode it on the far side. */
async function pushBench(n: number, runs: number): Promise<PushResult> {
  const table = fragmentedTable(n)
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-bench-push-'))
  const sock = path.join(dir, 'push.sock')
  let serverConn: Connection | null = null
  const server = await listen(sock, (_hello, conn) => {
    serverConn = conn
    return { protocol: PROTOCOL_VERSION, controllerId: 'bench', generation: 0 }
  })
  let client: Connection | null = null
  try {
    const c = await connect(sock, { role: 'agent', agentId: 'bench', mountpoint: dir, pid: process.pid, generation: 0 })
    client = c.conn
    let decodeMs = 0
    client.onRequest(async (method, params, payload) => {
      if (method !== 'table.load' || !payload) throw new Error(`unexpected ${method}`)
      const p = params as { generation: number; disks: { size: number }[] }
      const t = performance.now()
      const got = Table.fromBuffer(p.disks[0]!.size, payload, p.generation)
      decodeMs = performance.now() - t
      if (got.count !== n) throw new Error(`decoded ${got.count} extents, sent ${n}`)
      return { generation: p.generation }
    })
    if (!(await waitServer(() => serverConn !== null))) throw new Error('server side never saw the hello')
    const conn = serverConn as unknown as Connection
    const runsMs: number[] = []
    const encodes: number[] = []
    const decodes: number[] = []
    let payloadBytes = 0
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now()
      const payload = Table.encode(table)
      const t1 = performance.now()
      payloadBytes = payload.length
      const disks = [{ name: 'big', uid: 'uid-big', size: table.size, generation: r + 1, bytes: payload.length }]
      await conn.request('table.load', { generation: r + 1, durable: r + 1, devices: [], disks }, { payload, timeoutMs: 60_000 })
      runsMs.push(performance.now() - t0)
      encodes.push(t1 - t0)
      decodes.push(decodeMs)
    }
    return { extents: n, payloadBytes, encodeMs: median(encodes), decodeMs: median(decodes), totalMs: median(runsMs), runsMs }
  } finally {
    client?.close()
    await server.close()
    await fs.promises.rm(dir, { recursive: true, force: true })
  }
}

async function waitServer(pred: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !pred(); i++) await new Promise((r) => setTimeout(r, 20))
  return pred()
}

/** 4k O_DIRECT writes each into a new unit of a fresh thin disk: every one is an `unallocated` fault. */
async function faultBench(vstor: Vstor, count: number): Promise<FaultResult> {
  await vstor.recreate('faultrtt', count * UNIT)
  try {
    const thin = await runUnitWrites(vstor.image('faultrtt'), count)
    // The same writes again: every unit is mapped now, so this is the no-fault baseline.
    const mapped = await runUnitWrites(vstor.image('faultrtt'), count)
    return {
      writes: thin.writes,
      p50us: thin.p50us,
      p99us: thin.p99us,
      meanUs: thin.meanUs,
      mappedP50us: mapped.p50us,
      mappedP99us: mapped.p99us,
    }
  } finally {
    await vstor.deleteDisk('faultrtt')
  }
}

/** `status` requests over one connection, and whole `vstor disk list` processes. */
async function cliBench(vstor: Vstor, requests: number): Promise<CliResult> {
  const { conn } = await connect(vstor.socket, { role: 'cli', pid: process.pid })
  const times: number[] = []
  try {
    for (let i = 0; i < requests; i++) {
      const t = performance.now()
      await conn.call('status', {})
      times.push(performance.now() - t)
    }
  } finally {
    conn.close()
  }
  const diskListRunsMs: number[] = []
  for (let i = 0; i < 5; i++) {
    const t = performance.now()
    const r = await run(process.execPath, [VSTOR_BIN, 'disk', 'list', '--json', '--socket', vstor.socket, '--data-dir', vstor.dataDir])
    diskListRunsMs.push(performance.now() - t)
    if (r.code !== 0) throw new Error(`vstor disk list failed: ${r.stderr.trim()}`)
  }
  return {
    requests,
    statusP50ms: percentile(times, 50),
    statusP99ms: percentile(times, 99),
    diskListRunsMs,
    diskListMedianMs: median(diskListRunsMs),
  }
}

export interface MetaOptions {
  vstor: Vstor | null // null when the vstor targets could not start
  quick: boolean
  /** The run's teardown (the memory benchmark's own controller and agent register there for signals). */
  cleanup: Cleanup
}

export async function runMeta({ vstor, quick, cleanup }: MetaOptions): Promise<MetaResult> {
  const noVstor = { error: 'vstor instance did not start' }
  const table = await attempt('table lookups', runTableBench)
  const push = await attempt('1M-extent table push', () => pushBench(2 ** 20, quick ? 2 : 3))
  const fault = vstor ? await attempt('thin first-write fault round trip', () => faultBench(vstor, quick ? 100 : 200)) : noVstor
  const cli = vstor ? await attempt('controller request latency', () => cliBench(vstor, quick ? 100 : 500)) : noVstor
  const remote = await attempt('push fan-out to 1/10/100 agents, fault round trip over TLS and the socket', () => runRemote(quick))
  const snapshot = await attempt('snapshot time against extent count', () => runSnapshotScale([1000, 10_000, 100_000], quick ? 2 : 3))
  const cow = vstor ? await attempt('copy-on-write fault round trip', () => runCowFaults(vstor, quick ? 100 : 200)) : noVstor
  const memory = await attempt('agent memory per disk and per extent', () => runMemory(cleanup, quick))
  return { table, push, fault, cli, remote, snapshot, cow, memory }
}
