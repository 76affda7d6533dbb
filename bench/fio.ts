// fio job definitions and a runner that returns the few numbers the report needs.
//
// Invariants:
//   * every job runs with --direct=1 except the buffered sequential write (--direct=0 --end_fsync=1);
//   * write jobs are size-capped (no --time_based), so on a freshly created thin disk every write is a
//     first write (fio never wraps around); read jobs are --time_based;
//   * fio's JSON goes to a file (--output), so its stderr chatter never breaks parsing.

import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Run a command to completion (env: the whole environment, default ours); never rejects (exit code 1 when it could not run). */
export function run(cmd: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 2 ** 20, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

export type Metric = 'MB/s' | 'IOPS'

export interface JobSpec {
  id: string
  label: string
  rw: 'write' | 'read' | 'randread' | 'randwrite'
  bs: string
  ioengine: 'psync' | 'libaio'
  iodepth: number
  direct: boolean
  metric: Metric
}

export const JOBS: JobSpec[] = [
  { id: 'seqread-1m', label: 'seq read 1M psync', rw: 'read', bs: '1M', ioengine: 'psync', iodepth: 1, direct: true, metric: 'MB/s' },
  {
    id: 'randread-4k-qd1',
    label: '4k randread QD1 psync',
    rw: 'randread',
    bs: '4k',
    ioengine: 'psync',
    iodepth: 1,
    direct: true,
    metric: 'IOPS',
  },
  {
    id: 'randread-4k-qd16',
    label: '4k randread QD16 libaio',
    rw: 'randread',
    bs: '4k',
    ioengine: 'libaio',
    iodepth: 16,
    direct: true,
    metric: 'IOPS',
  },
  { id: 'seqwrite-1m', label: 'seq write 1M psync', rw: 'write', bs: '1M', ioengine: 'psync', iodepth: 1, direct: true, metric: 'MB/s' },
  {
    id: 'randwrite-4k-qd1',
    label: '4k randwrite QD1 psync',
    rw: 'randwrite',
    bs: '4k',
    ioengine: 'psync',
    iodepth: 1,
    direct: true,
    metric: 'IOPS',
  },
  {
    id: 'randwrite-4k-qd16',
    label: '4k randwrite QD16 libaio',
    rw: 'randwrite',
    bs: '4k',
    ioengine: 'libaio',
    iodepth: 16,
    direct: true,
    metric: 'IOPS',
  },
  {
    id: 'seqwrite-1m-buffered',
    label: 'seq write 1M buffered+fsync',
    rw: 'write',
    bs: '1M',
    ioengine: 'psync',
    iodepth: 1,
    direct: false,
    metric: 'MB/s',
  },
]

export const isWrite = (job: JobSpec): boolean => job.rw === 'write' || job.rw === 'randwrite'

export interface FioResult {
  mbps: number // MB/s (10^6 bytes)
  iops: number
  clatP50us: number
  clatP99us: number
  error: number // fio's per-job error code, 0 = ok
  elapsedMs: number
}

interface FioSide {
  bw_bytes: number
  iops: number
  clat_ns?: { percentile?: Record<string, number> }
}
interface FioJson {
  jobs: { error: number; read: FioSide; write: FioSide; job_runtime?: number }[]
}

/** Run fio with `args` (plus --output-format=json); resolves with the parsed JSON and fio's exit status. */
export function fio(args: string[], timeoutMs: number): Promise<{ json: FioJson | null; code: number; stderr: string }> {
  const out = path.join(os.tmpdir(), `vstor-bench-fio-${process.pid}-${Date.now()}.json`)
  return new Promise((resolve) => {
    execFile('fio', [...args, '--output-format=json', `--output=${out}`], { timeout: timeoutMs }, (err, _stdout, stderr) => {
      let json: FioJson | null = null
      try {
        const text = fs.readFileSync(out, 'utf8')
        const brace = text.indexOf('{')
        if (brace >= 0) json = JSON.parse(text.slice(brace)) as FioJson
      } catch {
        json = null
      }
      fs.rmSync(out, { force: true })
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ json, code, stderr: String(stderr) })
    })
  })
}

function pick(json: FioJson | null, write: boolean): FioResult {
  const job = json?.jobs[0]
  if (!job) return { mbps: 0, iops: 0, clatP50us: 0, clatP99us: 0, error: -1, elapsedMs: 0 }
  const side = write ? job.write : job.read
  const pct = side.clat_ns?.percentile ?? {}
  return {
    mbps: side.bw_bytes / 1e6,
    iops: side.iops,
    clatP50us: (pct['50.000000'] ?? 0) / 1000,
    clatP99us: (pct['99.000000'] ?? 0) / 1000,
    error: job.error,
    elapsedMs: job.job_runtime ?? 0,
  }
}

/** One measured job against `file` (size bytes), `runtime` seconds at most. */
export async function runJob(file: string, job: JobSpec, size: number, runtime: number): Promise<FioResult> {
  const args = [
    `--name=${job.id}`,
    `--filename=${file}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--ioengine=${job.ioengine}`,
    `--iodepth=${job.iodepth}`,
    `--direct=${job.direct ? 1 : 0}`,
    `--size=${size}`,
    `--runtime=${runtime}`,
    '--randrepeat=0',
  ]
  if (!isWrite(job)) args.push('--time_based')
  if (!job.direct) args.push('--end_fsync=1')
  const { json, code, stderr } = await fio(args, (runtime + 60) * 1000)
  const r = pick(json, isWrite(job))
  if (code !== 0 && r.error === 0) r.error = code
  if (r.error !== 0)
    process.stderr.write(`bench: fio ${job.id} on ${file} failed (error ${r.error}): ${stderr.trim().split('\n').slice(-3).join(' | ')}\n`)
  return r
}

/** Fill `file` sequentially so reads hit written data (untimed). */
export async function prefill(file: string, size: number): Promise<void> {
  const args = [
    `--name=prefill`,
    `--filename=${file}`,
    '--rw=write',
    '--bs=1M',
    '--ioengine=libaio',
    '--iodepth=8',
    '--direct=1',
    `--size=${size}`,
  ]
  const { json, code, stderr } = await fio(args, 600_000)
  if (code !== 0 || !json || json.jobs[0]?.error) throw new Error(`prefill of ${file} failed: ${stderr.trim()}`)
}

export interface VerifyResult {
  verified: boolean
  iops: number
  detail: string
}

/** 4k randwrite QD16 libaio with crc32c verification over `size` bytes. */
export async function runVerify(file: string, size: number): Promise<VerifyResult> {
  const args = [
    '--name=verify',
    `--filename=${file}`,
    '--rw=randwrite',
    '--bs=4k',
    '--ioengine=libaio',
    '--iodepth=16',
    '--direct=1',
    `--size=${size}`,
    '--verify=crc32c',
    '--verify_fatal=1',
    '--verify_state_save=0', // no <job>-verify.state files left in the cwd on failure
  ]
  const { json, code, stderr } = await fio(args, 600_000)
  const job = json?.jobs[0]
  const verified = code === 0 && job !== undefined && job.error === 0
  const firstBad = stderr.split('\n').find((l) => l.startsWith('verify:') || l.startsWith('fio:')) ?? ''
  return { verified, iops: job ? job.write.iops : 0, detail: verified ? '' : firstBad.trim() || `fio exit ${code}` }
}

export interface LatencyResult {
  writes: number
  p50us: number
  p99us: number
  meanUs: number
}

/**
 * `count` 4k O_DIRECT writes, each into a new 1 MiB unit (rw=write:1020k skips the rest of the unit),
 * so on a fresh thin disk every one is a first write that faults to the controller.
 */
export async function runUnitWrites(file: string, count: number): Promise<LatencyResult> {
  const args = [
    '--name=fault-rtt',
    `--filename=${file}`,
    '--rw=write:1020k',
    '--bs=4k',
    '--ioengine=psync',
    '--direct=1',
    `--size=${count}M`,
    `--number_ios=${count}`,
    '--lat_percentiles=0',
    '--clat_percentiles=1',
  ]
  const { json, code, stderr } = await fio(args, 600_000)
  const job = json?.jobs[0]
  if (code !== 0 || !job || job.error) throw new Error(`unit writes on ${file} failed: ${stderr.trim()}`)
  const pct = job.write.clat_ns?.percentile ?? {}
  const total = (job.write as FioSide & { total_ios?: number }).total_ios ?? count
  const mean = (job.write.clat_ns as { mean?: number } | undefined)?.mean ?? 0
  return { writes: total, p50us: (pct['50.000000'] ?? 0) / 1000, p99us: (pct['99.000000'] ?? 0) / 1000, meanUs: mean / 1000 }
}
