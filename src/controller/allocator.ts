// Free space per device, as sorted maximal runs of absolute byte offsets.
// Invariants: runs of one device are sorted, disjoint, non-adjacent and lie in
// [dataStart, dataStart + capacity); every byte there is either in exactly one
// run or mapped by exactly one extent of one disk. allocate() only plans;
// reserve()/release() change the lists once a change is committed.

import { NO_DEVICE, type Extent } from '../table/table'
import { VstorError } from '../errors'
import { formatSize } from '../size'

export interface Run {
  start: number
  end: number
}
export interface Piece {
  device: number
  pstart: number
  length: number
}

export class Allocator {
  private readonly free = new Map<number, Run[]>()

  /** Add a device whose data area is [start, end), wholly free. */
  addDevice(device: number, start: number, end: number): void {
    this.free.set(device, end > start ? [{ start, end }] : [])
  }

  removeDevice(device: number): void {
    this.free.delete(device)
  }

  freeBytes(device: number): number {
    return (this.free.get(device) ?? []).reduce((s, r) => s + r.end - r.start, 0)
  }

  runs(device: number): Run[] {
    return (this.free.get(device) ?? []).map((r) => ({ ...r }))
  }

  /** Mark the mapped parts of these extents as used. Throws if any byte is not free. */
  reserve(extents: Iterable<Extent>): void {
    for (const e of extents) {
      if (e.device === NO_DEVICE) continue
      const runs = this.free.get(e.device)
      const end = e.pstart + e.length
      const i = runs ? findRun(runs, e.pstart) : -1
      const r = runs?.[i]
      if (!runs || !r || r.start > e.pstart || r.end < end) {
        throw new VstorError('INTERNAL', `device ${e.device} bytes [${e.pstart}, ${end}) are not free (overlapping extents)`)
      }
      const parts: Run[] = []
      if (r.start < e.pstart) parts.push({ start: r.start, end: e.pstart })
      if (end < r.end) parts.push({ start: end, end: r.end })
      runs.splice(i, 1, ...parts)
    }
  }

  /** Return the mapped parts of these extents to the free lists. */
  release(extents: Iterable<Extent>): void {
    for (const e of extents) {
      if (e.device === NO_DEVICE) continue
      const runs = this.free.get(e.device)
      if (!runs) continue
      let start = e.pstart
      let end = e.pstart + e.length
      // first run starting at or after start
      let i = findRun(runs, start) + 1
      const prev = runs[i - 1]
      if (prev && prev.end > start) throw new VstorError('INTERNAL', `device ${e.device} bytes at ${start} released twice`)
      let remove = 0
      if (prev && prev.end === start) {
        start = prev.start
        i--
        remove++
      }
      const next = runs[i + remove]
      if (next && next.start < end) throw new VstorError('INTERNAL', `device ${e.device} bytes at ${next.start} released twice`)
      if (next && next.start === end) {
        end = next.end
        remove++
      }
      runs.splice(i, remove, { start, end })
    }
  }

  /**
   * Plan `bytes` of space on the allowed devices (all when undefined): best fit
   * into one run if any holds it all, else the largest runs first.
   */
  allocate(bytes: number, allowed?: number[]): Piece[] {
    const devices = allowed ?? [...this.free.keys()]
    const all: Piece[] = []
    for (const d of devices) for (const r of this.free.get(d) ?? []) all.push({ device: d, pstart: r.start, length: r.end - r.start })
    let best: Piece | undefined
    for (const p of all) if (p.length >= bytes && (!best || p.length < best.length)) best = p
    if (best) return [{ device: best.device, pstart: best.pstart, length: bytes }]
    const total = all.reduce((s, p) => s + p.length, 0)
    if (total < bytes) {
      throw new VstorError(
        'NO_SPACE',
        `not enough free space: need ${formatSize(bytes)}, the pool has ${formatSize(total)} free; add a device with \`vstor device add\``,
      )
    }
    all.sort((a, b) => b.length - a.length || a.device - b.device || a.pstart - b.pstart)
    const out: Piece[] = []
    let left = bytes
    for (const p of all) {
      if (left === 0) break
      const take = Math.min(p.length, left)
      out.push({ device: p.device, pstart: p.pstart, length: take })
      left -= take
    }
    return out
  }
}

/** Index of the last run with start <= offset, or -1. */
function findRun(runs: Run[], offset: number): number {
  let lo = 0
  let hi = runs.length - 1
  let ans = -1
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2)
    if ((runs[mid] as Run).start <= offset) {
      ans = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return ans
}
