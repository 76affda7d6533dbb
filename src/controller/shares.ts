// Physical ranges mapped by more than one extent (snapshots and clones share
// them). The `shared` table holds a reference count for every range mapped by
// two or more extents; a mapped range without a row has exactly one owner.
// Invariant (checked at start): the counts computed from the extents equal the
// rows, range by range, so sharing is allowed exactly where it is recorded and
// any other double ownership is DB_CORRUPT.

import { VstorError } from '../errors'
import type { Span } from './allocator'
import type { Db } from './db'

export interface Counted {
  device: number
  start: number
  end: number
  count: number
}

/** Coverage of spans as maximal segments of equal count (> 0), sorted by device and offset. */
export function countCoverage(spans: Iterable<Span>): Counted[] {
  const edges = new Map<number, { at: number; d: number }[]>()
  for (const s of spans) {
    if (s.length <= 0) continue
    let list = edges.get(s.device)
    if (!list) edges.set(s.device, (list = []))
    list.push({ at: s.pstart, d: 1 }, { at: s.pstart + s.length, d: -1 })
  }
  const out: Counted[] = []
  for (const device of [...edges.keys()].sort((a, b) => a - b)) {
    const list = edges.get(device)!.sort((a, b) => a.at - b.at)
    let count = 0
    let i = 0
    while (i < list.length) {
      const at = list[i]!.at
      while (i < list.length && list[i]!.at === at) count += list[i++]!.d
      const next = list[i]?.at
      if (count > 0 && next !== undefined) push(out, { device, start: at, end: next, count })
    }
  }
  return out
}

function push(out: Counted[], c: Counted): void {
  const last = out[out.length - 1]
  if (last && last.device === c.device && last.end === c.start && last.count === c.count) last.end = c.end
  else out.push(c)
}

/** Rows of the shared table as canonical segments. */
export async function sharedRows(db: Db): Promise<Counted[]> {
  const rows = await db.all<{ device_id: number; pstart: number; length: number; refs: number }>(
    'SELECT device_id, pstart, length, refs FROM shared ORDER BY device_id, pstart',
  )
  const out: Counted[] = []
  for (const r of rows) push(out, { device: r.device_id, start: r.pstart, end: r.pstart + r.length, count: r.refs })
  return out
}

/**
 * Check the extents' coverage against the shared table; return every mapped range once
 * (for the allocator). Throws DB_CORRUPT naming the first disagreement.
 */
export async function checkShared(db: Db, spans: Span[]): Promise<Span[]> {
  const cov = countCoverage(spans)
  const multi = cov.filter((c) => c.count > 1)
  const rows = await sharedRows(db)
  const n = Math.max(multi.length, rows.length)
  for (let i = 0; i < n; i++) {
    const a = multi[i]
    const b = rows[i]
    if (!a || !b || a.device !== b.device || a.start !== b.start || a.end !== b.end || a.count !== b.count) {
      const what = a
        ? `device ${a.device} [${a.start}, ${a.end}) is mapped by ${a.count} overlapping extents`
        : `device ${b!.device} [${b!.start}, ${b!.end}) is recorded as shared ${b!.count} times`
      const but = b ? `the shared table says device ${b.device} [${b.start}, ${b.end}) × ${b.count}` : 'the shared table has no such row'
      throw new VstorError('DB_CORRUPT', `database ${db.file} is inconsistent (${what}, but ${but}): restore it from backup`)
    }
  }
  const union: Span[] = []
  for (const c of cov) {
    const last = union[union.length - 1]
    if (last && last.device === c.device && last.pstart + last.length === c.start) last.length += c.end - c.start
    else union.push({ device: c.device, pstart: c.start, length: c.end - c.start })
  }
  return union
}
