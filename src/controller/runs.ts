// Sets of byte ranges per device, as sorted maximal runs of absolute offsets.
// Invariant: runs of one device are sorted, disjoint and non-adjacent
// (neighbours are merged on add); add() refuses bytes already in the set and
// remove() refuses bytes not in it, so double frees and double takes show up
// as errors instead of silent corruption. Lookups are binary searches.

import { VstorError } from '../errors'

export interface Run {
  start: number
  end: number
}

/** Index of the last run with start <= offset, or -1. */
export function findRun(runs: Run[], offset: number): number {
  let lo = 0
  let hi = runs.length - 1
  let ans = -1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (runs[mid]!.start <= offset) {
      ans = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return ans
}

export class RunSet {
  private readonly byDevice = new Map<number, Run[]>()

  devices(): number[] {
    return [...this.byDevice.keys()]
  }

  runs(device: number): Run[] {
    return (this.byDevice.get(device) ?? []).map((r) => ({ ...r }))
  }

  /** The live array (callers must not change it). */
  view(device: number): readonly Run[] {
    return this.byDevice.get(device) ?? []
  }

  bytes(device: number): number {
    let s = 0
    for (const r of this.byDevice.get(device) ?? []) s += r.end - r.start
    return s
  }

  dropDevice(device: number): void {
    this.byDevice.delete(device)
  }

  /** Add [start, end); throws if any byte is in the set already. */
  add(device: number, start: number, end: number): void {
    if (end <= start) return
    let runs = this.byDevice.get(device)
    if (!runs) this.byDevice.set(device, (runs = []))
    let i = findRun(runs, start) + 1 // first run starting after start
    const prev = runs[i - 1]
    if (prev && prev.end > start) throw twice(device, start)
    let remove = 0
    let s = start
    let e = end
    if (prev && prev.end === start) {
      s = prev.start
      i--
      remove++
    }
    const next = runs[i + remove]
    if (next && next.start < end) throw twice(device, next.start)
    if (next && next.start === end) {
      e = next.end
      remove++
    }
    runs.splice(i, remove, { start: s, end: e })
  }

  /** Remove [start, end), which must lie wholly inside one run. */
  remove(device: number, start: number, end: number): void {
    if (end <= start) return
    const runs = this.byDevice.get(device)
    const i = runs ? findRun(runs, start) : -1
    const r = runs?.[i]
    if (!runs || !r || r.end < end) {
      throw new VstorError('INTERNAL', `device ${device} bytes [${start}, ${end}) are not in the set (overlapping use)`)
    }
    const parts: Run[] = []
    if (r.start < start) parts.push({ start: r.start, end: start })
    if (end < r.end) parts.push({ start: end, end: r.end })
    runs.splice(i, 1, ...parts)
  }

  /**
   * Remove many sorted, disjoint ranges of one device in one pass (O(n + m): a load of 1M extents).
   * Throws naming the first byte that is not in the set.
   */
  removeSorted(device: number, ranges: Run[]): void {
    const runs = this.byDevice.get(device) ?? []
    const out: Run[] = []
    let k = 0
    let cur: Run | null = runs[0] ? { ...runs[0] } : null
    for (const r of ranges) {
      if (r.end <= r.start) continue
      while (cur && cur.end <= r.start) {
        out.push(cur)
        k++
        cur = runs[k] ? { ...runs[k]! } : null
      }
      if (!cur || cur.start > r.start || cur.end < r.end) {
        throw new VstorError('INTERNAL', `device ${device} bytes [${r.start}, ${r.end}) are not in the set (overlapping use)`)
      }
      if (cur.start < r.start) out.push({ start: cur.start, end: r.start })
      cur = cur.end > r.end ? { start: r.end, end: cur.end } : null
      if (!cur) {
        k++
        cur = runs[k] ? { ...runs[k]! } : null
      }
    }
    if (cur) out.push(cur)
    for (k++; k < runs.length; k++) out.push({ ...runs[k]! })
    this.byDevice.set(device, out)
  }

  /** The parts of [start, end) that are in the set, in order. */
  overlap(device: number, start: number, end: number): Run[] {
    const runs = this.byDevice.get(device)
    if (!runs) return []
    const out: Run[] = []
    for (let i = Math.max(0, findRun(runs, start)); i < runs.length && runs[i]!.start < end; i++) {
      const r = runs[i]!
      const s = Math.max(r.start, start)
      const e = Math.min(r.end, end)
      if (e > s) out.push({ start: s, end: e })
    }
    return out
  }

  /** Whether every byte of [start, end) is in the set. */
  covers(device: number, start: number, end: number): boolean {
    const runs = this.byDevice.get(device)
    const r = runs?.[findRun(runs, start)]
    return !!r && r.start <= start && r.end >= end
  }
}

function twice(device: number, at: number): VstorError {
  return new VstorError('INTERNAL', `device ${device} bytes at ${at} are in the set already (freed twice?)`)
}
