// Free space per device, in two kinds: clean (known to read zeros) and dirty
// (free, but it may still hold bytes of a disk that used it). Quarantined
// space (freed, not yet safe from late writes) and mapped space are in
// neither set.
//
// Invariants: clean and dirty are disjoint and lie in [dataStart,
// dataStart + capacity) of their device; every byte there is in exactly one of
// clean, dirty, quarantine (space.ts) or mapped by extents. allocate() only
// plans, preferring clean space; take()/give() change the sets once a change
// is committed. A piece of a plan is wholly clean or wholly dirty, and dirty
// pieces must be zeroed before any disk maps them.

import { VstorError } from '../errors'
import { formatSize } from '../size'
import { RunSet, type Run } from './runs'

export type { Run }
export interface Piece {
  device: number
  pstart: number
  length: number
  /** Not known to read zeros: the controller zeroes it before it is mapped. */
  dirty?: boolean
}
/** Any byte range on a device (an extent's mapped part, a quarantine entry …). */
export interface Span {
  device: number
  pstart: number
  length: number
}

export class Allocator {
  readonly clean = new RunSet()
  readonly dirty = new RunSet()
  private readonly known = new Set<number>()

  /** Add a device whose data area is [start, end), wholly free: dirty unless known to read zeros. */
  addDevice(device: number, start: number, end: number, dirty = true): void {
    this.known.add(device)
    ;(dirty ? this.dirty : this.clean).add(device, start, end)
  }

  removeDevice(device: number): void {
    this.known.delete(device)
    this.clean.dropDevice(device)
    this.dirty.dropDevice(device)
  }

  freeBytes(device: number): number {
    return this.clean.bytes(device) + this.dirty.bytes(device)
  }

  dirtyBytes(device: number): number {
    return this.dirty.bytes(device)
  }

  /** Free runs of a device, clean and dirty merged (for tests and listings). */
  runs(device: number): Run[] {
    const all = [...this.clean.runs(device), ...this.dirty.runs(device)].sort((a, b) => a.start - b.start)
    const out: Run[] = []
    for (const r of all) {
      const last = out[out.length - 1]
      if (last && last.end === r.start) last.end = r.end
      else out.push(r)
    }
    return out
  }

  /** Remove these spans from the free sets (clean or dirty, any mix). Throws if any byte is not free. */
  take(spans: Iterable<Span>): void {
    for (const s of spans) {
      if (s.device < 0 || s.length <= 0) continue
      const end = s.pstart + s.length
      const c = this.clean.overlap(s.device, s.pstart, end)
      const d = this.dirty.overlap(s.device, s.pstart, end)
      const got = [...c, ...d].reduce((n, r) => n + r.end - r.start, 0)
      if (got !== s.length) {
        throw new VstorError('INTERNAL', `device ${s.device} bytes [${s.pstart}, ${end}) are not free (overlapping use)`)
      }
      for (const r of c) this.clean.remove(s.device, r.start, r.end)
      for (const r of d) this.dirty.remove(s.device, r.start, r.end)
    }
  }

  /** take() for many sorted, disjoint spans while all free space is clean (a load): one pass per device. */
  takeSorted(spans: Span[]): void {
    const byDev = new Map<number, Run[]>()
    for (const s of spans) {
      if (s.device < 0 || s.length <= 0) continue
      const l = byDev.get(s.device) ?? []
      l.push({ start: s.pstart, end: s.pstart + s.length })
      byDev.set(s.device, l)
    }
    for (const [device, ranges] of byDev) this.clean.removeSorted(device, ranges)
  }

  /** Return spans to the free sets, as dirty (may hold old bytes) or clean. Throws on a double free. */
  give(spans: Iterable<Span>, dirty: boolean): void {
    for (const s of spans) {
      if (s.device < 0 || s.length <= 0 || !this.known.has(s.device)) continue
      const end = s.pstart + s.length
      const other = dirty ? this.clean : this.dirty
      const twice = other.overlap(s.device, s.pstart, end)[0]
      if (twice) throw new VstorError('INTERNAL', `device ${s.device} bytes at ${twice.start} are in the set already (freed twice?)`)
      ;(dirty ? this.dirty : this.clean).add(s.device, s.pstart, end)
    }
  }

  /** Clean → dirty for the free parts of [start, end) (load: rows of the dirty table). */
  markDirty(device: number, start: number, end: number): void {
    for (const r of this.clean.overlap(device, start, end)) {
      this.clean.remove(device, r.start, r.end)
      this.dirty.add(device, r.start, r.end)
    }
  }

  /** Dirty → clean after the range was zeroed. Only the parts still dirty move (the rest was taken meanwhile). */
  markClean(device: number, start: number, end: number): void {
    for (const r of this.dirty.overlap(device, start, end)) {
      this.dirty.remove(device, r.start, r.end)
      this.clean.add(device, r.start, r.end)
    }
  }

  /**
   * Plan `bytes` on the allowed devices (all when undefined): best fit into one clean run, else one
   * dirty run, else the largest runs first, clean before dirty. Pieces are tagged dirty.
   */
  allocate(bytes: number, allowed?: number[]): Piece[] {
    const devices = allowed ?? [...this.known]
    const all: Piece[] = []
    for (const d of devices) {
      for (const r of this.clean.view(d)) all.push({ device: d, pstart: r.start, length: r.end - r.start, dirty: false })
      for (const r of this.dirty.view(d)) all.push({ device: d, pstart: r.start, length: r.end - r.start, dirty: true })
    }
    for (const wantDirty of [false, true]) {
      let best: Piece | undefined
      for (const p of all) if (!!p.dirty === wantDirty && p.length >= bytes && (!best || p.length < best.length)) best = p
      if (best) return [{ device: best.device, pstart: best.pstart, length: bytes, dirty: wantDirty }]
    }
    const total = all.reduce((s, p) => s + p.length, 0)
    if (total < bytes) {
      throw new VstorError(
        'NO_SPACE',
        `not enough free space: need ${formatSize(bytes)}, the pool has ${formatSize(total)} free; add a device with \`vstor device add\``,
      )
    }
    all.sort((a, b) => Number(a.dirty) - Number(b.dirty) || b.length - a.length || a.device - b.device || a.pstart - b.pstart)
    const out: Piece[] = []
    let left = bytes
    for (const p of all) {
      if (left === 0) break
      const take = Math.min(p.length, left)
      out.push({ device: p.device, pstart: p.pstart, length: take, dirty: p.dirty })
      left -= take
    }
    return out
  }
}
