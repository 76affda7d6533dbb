// The fio side of the report: a column per target, ratios of each vstor target against qsd and the
// raw file, the front-end targets (issue 10) as met/missed with their numbers, the verify line.
//
// Invariants: pure functions of the result object; ratios are of medians; a target that was not
// run has no column; a missing value prints as '-'; a check with a missing value is 'n/a', never met.

import type { Cell, JobResult } from './report'
import { TARGET_KEYS, type TargetKey } from './targets'
import type { VerifyResult } from './fio'

/** The part of a BenchResult this file reads. */
export interface FioResults {
  jobs: JobResult[]
  verify: Partial<Record<TargetKey, VerifyResult>>
}

/** vstor targets, compared with qsd and raw. */
const VSTOR_KEYS: TargetKey[] = ['fn', 'js', 'thick', 'thin']

export interface Check {
  name: string
  /** null: not measured (a target or a job missing). */
  met: boolean | null
  detail: string
}

export function num(v: number | undefined, metric: string): string {
  if (v === undefined || !Number.isFinite(v) || v === 0) return '-'
  return metric === 'IOPS' ? Math.round(v).toString() : v.toFixed(0)
}

function ratioOf(a: Cell | undefined, b: Cell | undefined): number | null {
  if (!a || !b || !a.median || !b.median) return null
  return a.median / b.median
}
const ratio = (a: Cell | undefined, b: Cell | undefined): string => ratioOf(a, b)?.toFixed(2) ?? '-'

/** Targets with at least one cell, in run order. */
export function present(res: FioResults): TargetKey[] {
  return TARGET_KEYS.filter((k) => res.jobs.some((j) => j.targets[k]) || res.verify[k])
}

/** Median (best) per target, one column each. */
export function valueRows(res: FioResults): string[][] {
  const keys = present(res)
  const rows = [['job', ...keys]]
  for (const j of res.jobs) {
    const vals = keys.map((k) => {
      const c = j.targets[k]
      if (!c) return '-'
      return `${num(c.median, j.metric)} (${num(c.best, j.metric)})${c.failed ? ` !${c.failed}` : ''}`
    })
    rows.push([`${j.label} [${j.metric}]`, ...vals])
  }
  return rows
}

/** Each vstor target against qsd, then against raw. */
export function ratioRows(res: FioResults): string[][] {
  const keys = present(res)
  const vs = VSTOR_KEYS.filter((k) => keys.includes(k))
  const bases = (['qsd', 'raw'] as const).filter((b) => keys.includes(b))
  const cols = bases.flatMap((b) => vs.map((k) => [k, b] as const))
  if (cols.length === 0) return []
  const rows = [['job', ...cols.map(([k, b]) => `${k}/${b}`)]]
  for (const j of res.jobs) rows.push([`${j.label} [${j.metric}]`, ...cols.map(([k, b]) => ratio(j.targets[k], j.targets[b]))])
  return rows
}

const LABELS: Partial<Record<TargetKey, string>> = { js: 'libfuse3 all JS (js)', thick: 'libfuse3 + native map (thick)' }

/** Issue 10: libfuse3 (js, thick) >= 1.0x qsd on every job; the native mapped path >= 2x qsd on 4k randread QD1 and QD16. */
export function checks(res: FioResults): Check[] {
  const out: Check[] = []
  for (const k of ['js', 'thick'] as const) {
    const name = `${LABELS[k]} >= 1.0x qsd on every job`
    const rs = res.jobs.map((j) => ({ id: j.id, r: ratioOf(j.targets[k], j.targets.qsd) }))
    if (rs.length === 0 || rs.every((x) => x.r === null)) {
      out.push({ name, met: null, detail: `${k} or qsd not run` })
      continue
    }
    const missed = rs.filter((x) => x.r !== null && x.r < 1).map((x) => x.id)
    const unmeasured = rs.some((x) => x.r === null)
    const all = rs.map((x) => `${x.id} ${x.r === null ? '-' : x.r.toFixed(2)}x`).join(', ')
    const met = missed.length ? false : unmeasured ? null : true
    out.push({ name, met, detail: `${missed.length ? `below on ${missed.join(', ')}; ` : ''}${all}` })
  }
  for (const id of ['randread-4k-qd1', 'randread-4k-qd16']) {
    const j = res.jobs.find((x) => x.id === id)
    const name = `native mapped path (thick) >= 2x qsd on ${j?.label ?? id}`
    const r = j ? ratioOf(j.targets.thick, j.targets.qsd) : null
    if (!j || r === null) {
      out.push({ name, met: null, detail: 'thick or qsd not run' })
      continue
    }
    const detail = `${num(j.targets.thick!.median, j.metric)} vs ${num(j.targets.qsd!.median, j.metric)} ${j.metric}, ${r.toFixed(2)}x`
    out.push({ name, met: r >= 2, detail })
  }
  return out
}

const verdict = (c: Check): string => (c.met === null ? 'n/a' : c.met ? 'met' : 'MISSED')

/** One line per check: "name: met (numbers)". */
export function checkLines(res: FioResults): string[] {
  return checks(res).map((c) => `${c.name}: ${verdict(c)} (${c.detail})`)
}

export function verifyLine(res: FioResults): string {
  return present(res)
    .map((k) => {
      const v = res.verify[k]
      return `${k}: ${v ? (v.verified ? 'yes' : 'no') : '-'}`
    })
    .join(', ')
}

/** Columns padded: the first left-aligned, the others right-aligned. */
export function pad(rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n')
}

/** A markdown table laid out as prettier lays it out (so `prettier --check` passes on the README). */
export function mdTable(rows: string[][]): string[] {
  if (rows.length === 0) return []
  const widths = rows[0]!.map((_, i) => Math.max(3, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)]
}
