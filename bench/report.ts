// Statistics, the printed tables, the JSON result file, the README section and the CPU profile summary.
//
// Invariants: pure formatting over the result object (no I/O except writeResults/updateReadme/
// summarizeProfiles); ratios are computed from medians; a missing value prints as '-'.

import fs from 'node:fs'
import path from 'node:path'
import type { JobSpec, VerifyResult } from './fio'
import type { MetaResult } from './meta'
import { checkLines, mdTable, pad, ratioRows, valueRows, verifyLine, type Check } from './compare'
import { memoryLines } from './memory'
import { movesLines, type MovesResult } from './moves'
import type { Dist, RemoteResult } from './remote'
import type { TargetKey } from './targets'

/** Median; the mean of the middle two for an even count. */
export function median(xs: number[]): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Nearest-rank percentile; 0 for an empty list. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export interface Cell {
  runs: number[]
  best: number
  median: number
  failed: number // runs where fio reported an error (value 0)
}
export interface JobResult {
  id: string
  label: string
  metric: JobSpec['metric']
  targets: Partial<Record<TargetKey, Cell>>
}
export interface Machine {
  cores: number
  cpu: string
  kernel: string
  fio: string
  node: string
  qemu: string
  memGiB: number
  loadAvg: number[] // 1/5/15 min at the start: the machine may be shared, numbers are noisy then
}
export interface ProfileEntry {
  fn: string
  where: string
  selfMs: number
  selfPct: number
}
export interface ProfileSummary {
  busyPct: number
  top: ProfileEntry[]
}
export interface BenchResult {
  date: string
  mode: 'quick' | 'full'
  machine: Machine
  config: { size: number; runtime: number; rounds: number; verifySize: number }
  jobs: JobResult[]
  verify: Partial<Record<TargetKey, VerifyResult>>
  meta: MetaResult | null
  moves: MovesResult | { error: string } | null
  profile: Record<string, ProfileSummary> | null
  /** The front-end targets (compare.ts checks()), as the report printed them; absent in older results. */
  checks?: Check[]
  errors: string[]
}

export function cell(runs: number[], failed: number): Cell {
  return { runs, best: runs.length ? Math.max(...runs) : 0, median: median(runs), failed }
}

const fmt = (v: number, d = 2): string => (Number.isFinite(v) ? v.toFixed(d) : '-')
const failed = (x: object): x is { error: string } => 'error' in x

export function metaLines(meta: MetaResult | null): string[] {
  if (!meta) return ['metadata benchmarks: not run']
  const out: string[] = []
  if (failed(meta.table)) out.push(`table lookups: FAILED (${meta.table.error})`)
  else {
    const t = meta.table
    const at1M = t.lookups.find((l) => l.extents >= 1_000_000)
    const perExtent = t.bytesPerExtent.computed
    out.push(
      `table lookup: ${t.lookups.map((l) => `${fmt(l.nsPerLookup, 0)} ns at ${l.extents} extents`).join(', ')} — target <= 1 us at 1M: ` +
        `${at1M && at1M.nsPerLookup <= 1000 ? 'met' : 'MISSED'}`,
      `table memory: ${fmt(perExtent, 1)} B/extent (arrayBuffers delta ${fmt(t.bytesPerExtent.measured, 1)}) — target <= 32 B: ${perExtent <= 32 ? 'met' : 'MISSED'}; ` +
        `1M extents encode ${fmt(t.encodeMs, 0)} ms, decode ${fmt(t.decodeMs, 0)} ms, one plan+apply ${fmt(t.applyMs, 2)} ms`,
    )
  }
  const p = meta.push
  if (failed(p)) out.push(`table push: FAILED (${p.error})`)
  else
    out.push(
      `full table push of ${p.extents} extents (${fmt(p.payloadBytes / 2 ** 20, 1)} MiB): ${fmt(p.totalMs, 0)} ms ` +
        `(encode ${fmt(p.encodeMs, 0)} ms, decode ${fmt(p.decodeMs, 0)} ms) — target < 2000 ms: ${p.totalMs < 2000 ? 'met' : 'MISSED'}`,
    )
  const f = meta.fault
  if (failed(f)) out.push(`thin first-write fault round trip: FAILED (${f.error})`)
  else
    out.push(
      `thin first-write 4k (${f.writes} writes, each a new unit): p50 ${fmt(f.p50us / 1000, 3)} ms, p99 ${fmt(f.p99us / 1000, 3)} ms ` +
        `(mapped baseline p50 ${fmt(f.mappedP50us / 1000, 3)} ms, p99 ${fmt(f.mappedP99us / 1000, 3)} ms) — target p50 < 2 ms: ${f.p50us < 2000 ? 'met' : 'MISSED'}`,
    )
  out.push(...remoteLines(meta.remote))
  const c = meta.cli
  if (failed(c)) out.push(`controller request latency: FAILED (${c.error})`)
  else
    out.push(
      `controller 'status' over one connection (${c.requests} requests): p50 ${fmt(c.statusP50ms, 3)} ms, p99 ${fmt(c.statusP99ms, 3)} ms; ` +
        `'vstor disk list' process: median ${fmt(c.diskListMedianMs, 0)} ms of 5`,
    )
  out.push(...snapLines(meta))
  out.push(...memoryLines(meta.memory))
  return out
}

function snapLines(meta: MetaResult): string[] {
  const out: string[] = []
  const s = meta.snapshot
  if (s && failed(s)) out.push(`snapshot time: FAILED (${s.error})`)
  else if (s) {
    const at100k = s.find((x) => x.extents >= 100_000)
    out.push(
      `snapshot of a 1 TiB thin disk: ${s.map((x) => `${fmt(x.snapshotMs, 0)} ms at ${x.extents} extents`).join(', ')} ` +
        `(its delete ${s.map((x) => fmt(x.deleteMs, 0)).join('/')} ms; controller start ${s.map((x) => fmt(x.loadMs, 0)).join('/')} ms) — ` +
        `target < 1000 ms at 100k: ${at100k && at100k.snapshotMs < 1000 ? 'met' : 'MISSED'}`,
    )
  }
  const c = meta.cow
  if (c && failed(c)) out.push(`copy-on-write fault: FAILED (${c.error})`)
  else if (c)
    out.push(
      `copy on write, 4k into a shared 1 MiB unit (${c.writes} writes, each a copy): p50 ${fmt(c.p50us / 1000, 3)} ms, ` +
        `p99 ${fmt(c.p99us / 1000, 3)} ms — target p50 < 5 ms: ${c.p50us < 5000 ? 'met' : 'MISSED'}`,
    )
  return out
}

const ms = (d: Dist): string => `p50 ${d.p50.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms`

export function remoteLines(r: RemoteResult | { error: string } | undefined): string[] {
  if (!r) return []
  if ('error' in r) return [`remote (fan-out, fault over TLS): FAILED (${r.error})`]
  const at100 = r.fanout.find((p) => p.agents === 100)
  const lines = r.fanout.map(
    (p) =>
      `push fan-out to ${p.agents} agent${p.agents === 1 ? '' : 's'} (${p.changes} changes): until the last ack ${ms(p.lastAck)}; ` +
      `push to last ack ${ms(p.spread)}`,
  )
  if (at100)
    lines.push(
      `  target: 100 agents acked < 50 ms at p99: ${at100.lastAck.p99 < 50 ? 'met' : 'MISSED'} (${at100.lastAck.p99.toFixed(2)} ms)`,
    )
  const f = r.faults
  lines.push(
    `fault round trip (${f.unix.faults} first writes each): unix socket ${ms(f.unix.fault)}, TLS ${ms(f.tls.fault)}; ` +
      `bare request unix ${ms(f.unix.request)}, TLS ${ms(f.tls.request)}; TLS/unix at p50 ${(f.tls.fault.p50 / f.unix.fault.p50).toFixed(2)}`,
  )
  return lines
}

export function printReport(res: BenchResult): void {
  const m = res.machine
  const lines = [
    '',
    `vstor bench (${res.mode}) ${res.date} — ${m.cores} cores (${m.cpu}), kernel ${m.kernel}, ${m.fio}, node ${m.node}, ${m.qemu}, load ${m.loadAvg.join(' ')}`,
    ...(res.jobs.every((j) => Object.keys(j.targets).length === 0)
      ? []
      : [
          `size ${res.config.size / 2 ** 20} MiB per target, runtime ${res.config.runtime} s per job, ${res.config.rounds} rounds interleaved; median (best)`,
          `fn: fuse-native (libfuse 2), js: libfuse3 all JS, thick: libfuse3 + native mapped path (the same thick disk, one agent each); thin: first writes`,
          '',
          pad(valueRows(res)),
          '',
          'ratios of medians:',
          pad(ratioRows(res)),
          '',
          'front-end targets:',
          ...checkLines(res).map((l) => `  ${l}`),
          '',
          `data verified (crc32c, 4k randwrite QD16, ${res.config.verifySize / 2 ** 20} MiB): ${verifyLine(res)}`,
          ...Object.entries(res.verify).flatMap(([k, v]) => (v && !v.verified ? [`  ${k}: ${v.detail}`] : [])),
        ]),
    '',
    ...metaLines(res.meta),
    ...movesLines(res.moves),
  ]
  if (res.profile) {
    for (const [who, p] of Object.entries(res.profile)) {
      lines.push('', `${who} CPU profile: main thread busy ${fmt(p.busyPct, 1)}% of the run; top self time (% of busy):`)
      for (const e of p.top) lines.push(`  ${fmt(e.selfPct, 1).padStart(5)}%  ${fmt(e.selfMs, 0).padStart(6)} ms  ${e.fn}  ${e.where}`)
    }
  }
  if (res.errors.length) lines.push('', 'errors:', ...res.errors.map((e) => `  ${e}`))
  process.stdout.write(lines.join('\n') + '\n')
}

export function writeResults(root: string, res: BenchResult, suffix = ''): string {
  const dir = path.join(root, 'bench', 'results')
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${res.date}-${res.mode}${suffix}.json`)
  fs.writeFileSync(file, JSON.stringify(res, null, 2) + '\n')
  return file
}

/** The markdown that goes between the README markers. */
export function markdown(res: BenchResult, resultFile: string): string {
  const m = res.machine
  return [
    `Measured with \`npm run bench\` (${res.mode} run, ${res.date}) on ${m.cores} cores, kernel ${m.kernel}, ${m.fio}, node ${m.node}, ${m.qemu}; load average ${m.loadAvg.join(' ')} at start.`,
    `Targets: a raw file (raw), a qemu-storage-daemon FUSE export of a raw file (qsd), one vstor thick disk through three front ends,`,
    `one agent each on the same controller (fn: fuse-native, libfuse 2; js: libfuse3 with every request through JS, VSTOR_NATIVE_MAP=0;`,
    `thick: libfuse3 with the native mapped path, the default), and a vstor image on a freshly created thin disk (write passes are first`,
    `writes). ${res.config.rounds} interleaved rounds of ${res.config.runtime} s per job; cells are median (best). Raw numbers: \`${resultFile}\`.`,
    '',
    ...mdTable(valueRows(res)),
    '',
    'Ratios of medians:',
    '',
    ...mdTable(ratioRows(res)),
    '',
    'Front-end targets:',
    '',
    ...checkLines(res).map((l) => `- ${l}`),
    '',
    `Data verified (fio crc32c, 4k randwrite QD16): ${verifyLine(res)}.`,
    '',
    ...[...metaLines(res.meta), ...movesLines(res.moves)].map((l) => (l.startsWith('  ') ? `  ${l.trim()}` : `- ${l}`)),
  ].join('\n')
}

/** Replace what is between <!-- bench:start --> and <!-- bench:end -->; false if the markers are missing. */
export function updateReadme(root: string, md: string): boolean {
  const file = path.join(root, 'README.md')
  if (!fs.existsSync(file)) return false
  const text = fs.readFileSync(file, 'utf8')
  const start = text.indexOf('<!-- bench:start -->')
  const end = text.indexOf('<!-- bench:end -->')
  if (start < 0 || end < start) return false
  const head = text.slice(0, start + '<!-- bench:start -->'.length)
  fs.writeFileSync(file, `${head}\n\n${md}\n\n${text.slice(end)}`) // blank lines around: as prettier has it
  return true
}

interface CpuNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}
interface CpuProfile {
  nodes: CpuNode[]
  startTime: number
  endTime: number
  samples?: number[]
}

/** Top self-time functions over every .cpuprofile in dir ((idle) excluded), and the busy share of wall time. */
export function summarizeProfiles(dir: string, top = 15): ProfileSummary {
  const self = new Map<string, { fn: string; where: string; hits: number }>()
  let hits = 0
  let idle = 0
  let us = 0
  for (const f of (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((f) => f.endsWith('.cpuprofile'))) {
    const prof = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CpuProfile
    us += prof.endTime - prof.startTime
    for (const n of prof.nodes) {
      const h = n.hitCount ?? 0
      if (!h) continue
      const cf = n.callFrame
      if (cf.functionName === '(idle)') {
        idle += h
        continue
      }
      hits += h
      const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')}:${cf.lineNumber + 1}` : ''
      const key = `${cf.functionName}@${where}`
      const e = self.get(key) ?? { fn: cf.functionName || '(anonymous)', where, hits: 0 }
      e.hits += h
      self.set(key, e)
    }
  }
  const msPerHit = hits + idle ? us / 1000 / (hits + idle) : 0
  const entries = [...self.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, top)
    .map((e) => ({ fn: e.fn, where: e.where, selfMs: e.hits * msPerHit, selfPct: hits ? (100 * e.hits) / hits : 0 }))
  return { busyPct: hits + idle ? (100 * hits) / (hits + idle) : 0, top: entries }
}
