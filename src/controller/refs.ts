// Reference counts of physical ranges that more than one extent maps
// (snapshots and clones share units; dm-thin keeps a count per block).
//
// Invariants:
//   * per device, segments are sorted, disjoint, count >= 2, and neighbours
//     with equal counts are merged; a mapped byte outside every segment has
//     exactly one owner, an unmapped byte none;
//   * plan() never changes the live counts: it returns new arrays for the
//     devices it touched, the spans whose last reference went (to quarantine),
//     and the windows whose `shared` rows must be rewritten; apply() swaps the
//     arrays in once the transaction that wrote those rows committed;
//   * rows in the `shared` table may be split anywhere (load merges them);
//     persist() replaces the rows inside each window by the new segments there.

import { VstorError } from '../errors'
import type { Span } from './allocator'
import type { Db } from './db'
import { cutRows } from './rows'
import type { Counted } from './shares'

export interface Seg {
  start: number
  end: number
  count: number
}
export interface Adjust {
  span: Span
  /** +1: one more extent maps it (it must be mapped already); -1: one extent stopped mapping it. */
  delta: 1 | -1
}
/** Above this many adjustments plan() sweeps whole devices instead of splicing one span at a time. */
const SWEEP_FROM = 32

export interface RefPlan {
  arrays: Map<number, Seg[]>
  /** Spans no extent maps any more: the caller quarantines them. */
  freed: Span[]
  /** Where rows change; pstart -1 means the whole device. */
  windows: Span[]
}

/** Index of the first segment with end > pos. */
function firstAfter(segs: Seg[], pos: number): number {
  let lo = 0
  let hi = segs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (segs[mid]!.end <= pos) lo = mid + 1
    else hi = mid
  }
  return lo
}

export class Refs {
  private readonly byDevice = new Map<number, Seg[]>()

  static from(rows: Counted[]): Refs {
    const r = new Refs()
    for (const c of rows) {
      let list = r.byDevice.get(c.device)
      if (!list) r.byDevice.set(c.device, (list = []))
      list.push({ start: c.start, end: c.end, count: c.count })
    }
    return r
  }

  /** Parts of [start, end) mapped by two or more extents. */
  shared(device: number, start: number, end: number): Seg[] {
    const segs = this.byDevice.get(device)
    if (!segs) return []
    const out: Seg[] = []
    for (let i = firstAfter(segs, start); i < segs.length && segs[i]!.start < end; i++) {
      const s = segs[i]!
      out.push({ start: Math.max(s.start, start), end: Math.min(s.end, end), count: s.count })
    }
    return out
  }

  sharedBytes(span: Span): number {
    return this.shared(span.device, span.pstart, span.pstart + span.length).reduce((n, s) => n + s.end - s.start, 0)
  }

  /** New counts after the adjustments, without touching the live ones. */
  plan(adjusts: Adjust[]): RefPlan {
    const arrays = new Map<number, Seg[]>()
    const freed: Span[] = []
    const windows: Span[] = []
    const live = adjusts.filter((a) => a.span.length > 0)
    if (live.length > SWEEP_FROM) return this.sweep(live)
    for (const { span, delta } of live) {
      let segs = arrays.get(span.device)
      if (!segs) arrays.set(span.device, (segs = [...(this.byDevice.get(span.device) ?? [])]))
      adjust(segs, span, delta, freed)
      windows.push(span)
    }
    return { arrays, freed, windows }
  }

  /** Many adjustments at once (a snapshot of 100k extents): one sweep per device, O((n + m) log(n + m)). */
  private sweep(adjusts: Adjust[]): RefPlan {
    const arrays = new Map<number, Seg[]>()
    const freed: Span[] = []
    const windows: Span[] = []
    const byDev = new Map<number, Adjust[]>()
    for (const a of adjusts) {
      const l = byDev.get(a.span.device) ?? []
      l.push(a)
      byDev.set(a.span.device, l)
    }
    for (const [device, list] of byDev) {
      // edges: +/- delta where adjustments start/end; segment edges carry the old counts
      const marks = new Set<number>()
      const deltaAt = new Map<number, number>()
      for (const { span, delta } of list) {
        const e = span.pstart + span.length
        marks.add(span.pstart).add(e)
        deltaAt.set(span.pstart, (deltaAt.get(span.pstart) ?? 0) + delta)
        deltaAt.set(e, (deltaAt.get(e) ?? 0) - delta)
      }
      const old = this.byDevice.get(device) ?? []
      for (const s of old) marks.add(s.start).add(s.end)
      const points = [...marks].sort((x, y) => x - y)
      const out: Seg[] = []
      let d = 0
      let k = 0
      for (let i = 0; i + 1 < points.length; i++) {
        const a = points[i]!
        const b = points[i + 1]!
        d += deltaAt.get(a) ?? 0
        while (k < old.length && old[k]!.end <= a) k++
        const seg = old[k]
        const base = seg && seg.start <= a ? seg.count : 1
        const count = d === 0 ? (seg && seg.start <= a ? seg.count : 0) : base + d
        if (d !== 0 && count <= 0) {
          const last = freed[freed.length - 1]
          if (last && last.device === device && last.pstart + last.length === a) last.length += b - a
          else freed.push({ device, pstart: a, length: b - a })
        }
        if (count >= 2) {
          const last = out[out.length - 1]
          if (last && last.end === a && last.count === count) last.end = b
          else out.push({ start: a, end: b, count })
        }
      }
      arrays.set(device, out)
      windows.push({ device, pstart: -1, length: 0 }) // the whole device: persist rewrites its rows
    }
    return { arrays, freed, windows }
  }

  /** Rewrite the `shared` rows inside the plan's windows (inside the caller's transaction). */
  async persist(db: Db, plan: RefPlan): Promise<void> {
    for (const w of plan.windows) {
      if (w.pstart < 0) {
        // a whole device (a sweep): rewrite its rows in batches
        await db.queue('DELETE FROM shared WHERE device_id = ?', [w.device])
        const segs = plan.arrays.get(w.device) ?? []
        for (let i = 0; i < segs.length; i += 500) {
          const part = segs.slice(i, i + 500)
          await db.queue(
            `INSERT INTO shared (device_id, pstart, length, refs) VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')}`,
            part.flatMap((s) => [w.device, s.start, s.end - s.start, s.count]),
          )
        }
        continue
      }
      const start = w.pstart
      const end = w.pstart + w.length
      await cutRows(db, 'shared', w.device, start, end)
      const segs = plan.arrays.get(w.device) ?? []
      for (let i = firstAfter(segs, start); i < segs.length && segs[i]!.start < end; i++) {
        const s = segs[i]!
        await insertRow(db, w.device, Math.max(s.start, start), Math.min(s.end, end), s.count)
      }
    }
  }

  apply(plan: RefPlan): void {
    for (const [device, segs] of plan.arrays) {
      if (segs.length) this.byDevice.set(device, segs)
      else this.byDevice.delete(device)
    }
  }

  dropDevice(device: number): void {
    this.byDevice.delete(device)
  }
}

async function insertRow(db: Db, device: number, start: number, end: number, count: number): Promise<void> {
  if (end > start)
    await db.queue('INSERT INTO shared (device_id, pstart, length, refs) VALUES (?, ?, ?, ?)', [device, start, end - start, count])
}

/** Apply one adjustment to a sorted segment array in place; bytes losing their last reference go to `freed`. */
function adjust(segs: Seg[], span: Span, delta: 1 | -1, freed: Span[]): void {
  const start = span.pstart
  const end = span.pstart + span.length
  const i = firstAfter(segs, start)
  let j = i
  while (j < segs.length && segs[j]!.start < end) j++
  const out: Seg[] = []
  const head = segs[i]
  if (head && head.start < start) out.push({ start: head.start, end: start, count: head.count })
  let pos = start
  const emit = (a: number, b: number, count: number): void => {
    const c = count + delta
    if (c <= 0) {
      const last = freed[freed.length - 1]
      if (last && last.device === span.device && last.pstart + last.length === a) last.length += b - a
      else freed.push({ device: span.device, pstart: a, length: b - a })
    } else if (c >= 2) out.push({ start: a, end: b, count: c })
  }
  for (let k = i; k < j; k++) {
    const s = segs[k]!
    const a = Math.max(s.start, start)
    const b = Math.min(s.end, end)
    if (a > pos) emit(pos, a, 1)
    emit(a, b, s.count)
    pos = b
  }
  if (pos < end) emit(pos, end, 1)
  const tail = segs[j - 1]
  if (j > i && tail && tail.end > end) out.push({ start: end, end: tail.end, count: tail.count })
  if (delta > 0 && out.length === 0) throw new VstorError('INTERNAL', `sharing device ${span.device} [${start}, ${end}) made no reference`)
  // merge with the neighbours outside the window, and inside it
  const lo = i > 0 ? i - 1 : i
  const hi = j < segs.length ? j + 1 : j
  const merged: Seg[] = []
  for (const s of [...segs.slice(lo, i), ...out, ...segs.slice(j, hi)]) {
    const last = merged[merged.length - 1]
    if (last && last.end === s.start && last.count === s.count) last.end = s.end
    else merged.push({ ...s })
  }
  segs.splice(lo, hi - lo, ...merged)
}
