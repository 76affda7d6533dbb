// The extent table of one virtual disk: pure data, no I/O.
//
// Invariant (checked by assertInvariant):
//   * extents are sorted by vstart, non-overlapping and gap-free:
//     vstart[0] = 0, vstart[i+1] = vstart[i] + length[i], and the last
//     extent ends at `size`; a region with no device is an explicit entry
//     with device = NO_DEVICE;
//   * every length is > 0;
//   * no two neighbours could be merged: neighbours differ in flags or
//     device, or are not contiguous on the device (claims 36-40);
//   * generation rises with every change.
// Lookup is a binary search over vstart (a Float64Array), so a table of 1M
// extents costs about 21 bytes per extent and a lookup ~20 compares.
// Changes: plan() is pure and returns a Change on current extent edges;
// apply() splices it in (and copes with changes that are not aligned or not
// normalized). Setting Zero is a discard: the extents lose their device and
// the caller frees the units (released() lists them). The binary form is in
// codec.ts, input validation in extents.ts, array-level checks in arrays.ts.
//
// API CONTRACT (implemented by the table module; other modules rely on it):

import { VstorError } from '../errors'
import { decodeArrays, decodeExtents, encodeArrays, encodeExtents, type ExtentArrays } from './codec'
import { arraysBroken, compact, subtractDeviceRanges } from './arrays'
import { checkFlags, isOffset, normalize, pushMerged } from './extents'

import { Flag, NO_DEVICE } from './flags'

export { Flag, ALL_FLAGS, NO_DEVICE, STATE_FLAGS, WRITE_PROTECTED, type StateName } from './flags'
export { onlyWriteProtects } from './extents'

export interface Extent {
  vstart: number // byte offset in the disk
  length: number // bytes, > 0
  device: number // device id, or NO_DEVICE
  pstart: number // absolute byte offset on the device (label area included); 0 when NO_DEVICE
  flags: number // OR of Flag
}

/** A normalized replacement: `extents` tile [start, end) exactly. */
export interface Change {
  start: number
  end: number
  extents: Extent[]
}

// Storage: struct of arrays with geometric capacity. vs has capacity + 1
// entries and vs[count] = size (sentinel), so length(i) = vs[i+1] - vs[i];
// 8 + 8 + 4 + 1 = 21 bytes per extent. A NO_DEVICE extent has pstart 0.
// Inputs (constructor, plan, apply) may be unsorted and unmerged; they are
// validated and normalized, and a NO_DEVICE extent's pstart is coerced to 0.
export class Table {
  readonly size: number
  generation: number
  private n = 0
  private vs: Float64Array
  private ps: Float64Array
  private dev: Int32Array
  private fl: Uint8Array

  /** A table of `size` bytes: either the given tiling extents, or one NO_DEVICE extent with `fill` flags (default Invalid). */
  constructor(size: number, extents?: Extent[], generation = 0, fill: number = Flag.Invalid) {
    if (!isOffset(size) || size === 0)
      throw new VstorError('BAD_ARGUMENT', `table size ${String(size)} must be a positive integer of bytes`)
    checkGeneration(generation)
    this.size = size
    this.generation = generation
    const list =
      extents === undefined
        ? [{ vstart: 0, length: size, device: NO_DEVICE, pstart: 0, flags: checkFlags(fill, 'table') }]
        : normalize(0, size, extents, 'table')
    this.vs = new Float64Array(list.length + 1)
    this.ps = new Float64Array(list.length)
    this.dev = new Int32Array(list.length)
    this.fl = new Uint8Array(list.length)
    this.vs[0] = 0
    this.splice(0, 0, list)
  }

  get count(): number {
    return this.n
  }

  /** Index of the extent containing offset (0 <= offset < size); binary search, no allocation. */
  find(offset: number): number {
    if (!(offset >= 0 && offset < this.size)) throw new VstorError('BAD_ARGUMENT', `offset ${offset} is outside the disk [0, ${this.size})`)
    const vs = this.vs
    let lo = 0
    let hi = this.n
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1 // an index (< 2^31), not an offset
      if (vs[mid]! <= offset) lo = mid
      else hi = mid
    }
    return lo
  }

  // Raw accessors for 0 <= i < count (unchecked: hot path of the agent).
  vstart(i: number): number {
    return this.vs[i]!
  }
  length(i: number): number {
    return this.vs[i + 1]! - this.vs[i]!
  }
  end(i: number): number {
    return this.vs[i + 1]!
  }
  device(i: number): number {
    return this.dev[i]!
  }
  pstart(i: number): number {
    return this.ps[i]!
  }
  flags(i: number): number {
    return this.fl[i]!
  }

  get(i: number): Extent {
    if (!Number.isInteger(i) || i < 0 || i >= this.n) throw new VstorError('BAD_ARGUMENT', `extent index ${i} is outside [0, ${this.n})`)
    return this.piece(i, this.vs[i]!, this.vs[i + 1]!)
  }

  all(): Extent[] {
    const out: Extent[] = new Array(this.n)
    for (let i = 0; i < this.n; i++) out[i] = this.piece(i, this.vs[i]!, this.vs[i + 1]!)
    return out
  }

  /** Extents overlapping [start, end), clipped to it (pstart adjusted). */
  slice(start: number, end: number): Extent[] {
    this.checkRange(start, end, true)
    const out: Extent[] = []
    if (start === end) return out
    for (let i = this.find(start); i < this.n && this.vs[i]! < end; i++) {
      out.push(this.piece(i, Math.max(start, this.vs[i]!), Math.min(end, this.vs[i + 1]!)))
    }
    return out
  }

  /**
   * Plan replacing [start, end) with `extents` (which must tile it), without changing the table.
   * The edge extents are split (their pieces outside [start, end) kept, pstart adjusted) and
   * merged with neighbours; the result is the smallest run of *whole current extents* whose
   * replacement differs, so change.start and change.end are edges of the current table (a store
   * may delete its rows with vstart in [start, end) and insert change.extents). When nothing would
   * change it is empty ({start, end: start, extents: []}); apply() accepts that (generation + 1 only).
   */
  plan(start: number, end: number, extents: Extent[]): Change {
    this.checkRange(start, end, false)
    const { lo, hi, list } = this.window(start, end, normalize(start, end, extents, 'change'))
    let a = 0
    let b = list.length
    let o = lo
    let ob = hi
    while (a < b && o < ob && this.same(o, list[a]!)) {
      a++
      o++
    }
    while (a < b && o < ob && this.same(ob - 1, list[b - 1]!)) {
      b--
      ob--
    }
    if (a === b) return { start, end: start, extents: [] }
    return { start: this.vs[o]!, end: this.vs[ob]!, extents: list.slice(a, b) }
  }

  /**
   * Plan setting and clearing flags over [start, end). Setting Zero discards: the result is
   * NO_DEVICE with pstart 0, so the caller must free the units the range used (see released()).
   */
  planFlags(start: number, end: number, set: number, clear: number): Change {
    checkFlags(set, 'set flags')
    checkFlags(clear, 'clear flags')
    if (set & clear) throw new VstorError('BAD_ARGUMENT', `flags ${set & clear} are both set and cleared; choose one`)
    this.checkRange(start, end, false)
    const extents = this.slice(start, end)
    for (const e of extents) {
      e.flags = (e.flags | set) & ~clear
      if (set & Flag.Zero) {
        e.device = NO_DEVICE
        e.pstart = 0
      }
    }
    return this.plan(start, end, extents)
  }

  /**
   * Apply a Change in one splice; generation = `generation` if given, else + 1. Any Change that
   * tiles [start, end) is accepted: edges are split and the seams re-merged.
   */
  apply(change: Change, generation?: number): void {
    if (generation !== undefined) checkGeneration(generation)
    const { start, end, extents } = change
    if (start === end && Array.isArray(extents) && extents.length === 0) {
      this.checkRange(start, end, true)
    } else {
      this.checkRange(start, end, false)
      const w = this.window(start, end, normalize(start, end, extents, 'change'))
      this.splice(w.lo, w.hi, w.list)
    }
    this.generation = generation ?? this.generation + 1
  }

  /** Device ranges the table maps in [change.start, change.end) that `change` no longer maps: the units to free. Call before apply(change). */
  released(change: Change): Extent[] {
    return subtractDeviceRanges(this.slice(change.start, change.end), change.extents)
  }

  assertInvariant(): void {
    const broken = arraysBroken({ count: this.n, vstart: this.vs, pstart: this.ps, device: this.dev, flags: this.fl }, this.size)
    if (broken) throw new VstorError('INTERNAL', `extent table invariant broken: ${broken}`)
    if (!isOffset(this.generation)) throw new VstorError('INTERNAL', `extent table invariant broken: generation ${this.generation}`)
  }

  /** Bytes mapped to a device (device != NO_DEVICE). */
  allocated(): number {
    let sum = 0
    for (let i = 0; i < this.n; i++) if (this.dev[i] !== NO_DEVICE) sum += this.vs[i + 1]! - this.vs[i]!
    return sum
  }

  clone(): Table {
    const t = new Table(this.size, undefined, this.generation)
    t.adopt({
      count: this.n,
      vstart: this.vs.slice(0, this.n + 1),
      pstart: this.ps.slice(0, this.n),
      device: this.dev.slice(0, this.n),
      flags: this.fl.slice(0, this.n),
    })
    return t
  }

  /** Binary form for the wire: see table/codec. */
  static encode(extents: Extent[] | Table): Buffer {
    if (extents instanceof Table)
      return encodeArrays({ count: extents.n, vstart: extents.vs, pstart: extents.ps, device: extents.dev, flags: extents.fl })
    return encodeExtents(extents)
  }

  static decodeExtents(buf: Buffer): Extent[] {
    return decodeExtents(buf)
  }

  /** A table from its binary form, built straight into typed arrays; BAD_FRAME if it does not tile [0, size). */
  static fromBuffer(size: number, buf: Buffer, generation: number): Table {
    const t = new Table(size, undefined, generation)
    const a = decodeArrays(buf)
    if (a.count < 1 || a.vstart[0] !== 0 || a.vstart[a.count] !== size) {
      throw new VstorError('BAD_FRAME', `extent table payload covers [${a.vstart[0]}, ${a.vstart[a.count]}), not the disk [0, ${size})`)
    }
    compact(a)
    t.adopt(a)
    return t
  }

  private adopt(a: ExtentArrays): void {
    this.n = a.count
    this.vs = a.vstart
    this.ps = a.pstart
    this.dev = a.device
    this.fl = a.flags
  }

  private piece(i: number, s: number, e: number): Extent {
    const d = this.dev[i]!
    return { vstart: s, length: e - s, device: d, pstart: d === NO_DEVICE ? 0 : this.ps[i]! + (s - this.vs[i]!), flags: this.fl[i]! }
  }

  /** Whether extent i is exactly e. */
  private same(i: number, e: Extent): boolean {
    const vs = this.vs
    return (
      vs[i] === e.vstart &&
      vs[i + 1] === e.vstart + e.length &&
      this.dev[i] === e.device &&
      this.ps[i] === e.pstart &&
      this.fl[i] === e.flags
    )
  }

  private checkRange(start: number, end: number, allowEmpty: boolean): void {
    if (!isOffset(start) || !isOffset(end) || end > this.size || (allowEmpty ? end < start : end <= start)) {
      throw new VstorError('BAD_ARGUMENT', `range [${start}, ${end}) is empty or outside the disk [0, ${this.size})`)
    }
  }

  /**
   * The normalized result over old extents [lo, hi): the extents touching [start, end), plus one
   * neighbour on each side so merges across the seams happen; edge pieces outside keep their pstart.
   */
  private window(start: number, end: number, repl: Extent[]): { lo: number; hi: number; list: Extent[] } {
    const a = this.find(start)
    const b = this.find(end - 1)
    const lo = a > 0 ? a - 1 : a
    const hi = b + 1 < this.n ? b + 2 : b + 1
    const list: Extent[] = []
    for (let i = lo; i < a; i++) pushMerged(list, this.get(i))
    if (this.vs[a]! < start) pushMerged(list, this.piece(a, this.vs[a]!, start))
    for (const e of repl) pushMerged(list, e)
    if (this.vs[b + 1]! > end) pushMerged(list, this.piece(b, end, this.vs[b + 1]!))
    for (let i = b + 1; i < hi; i++) pushMerged(list, this.get(i))
    return { lo, hi, list }
  }

  /** Replace extents [lo, hi) with `list` (which covers the same bytes) in one splice; grows or shrinks geometrically. */
  private splice(lo: number, hi: number, list: Extent[]): void {
    const m = list.length
    const n = this.n
    const count = n - (hi - lo) + m
    const cap = this.fl.length
    if (count > cap || (count * 4 < cap && cap > 64)) {
      const ncap = count > cap ? Math.max(count, Math.ceil(cap * 1.5)) : Math.ceil(count * 1.5)
      const vs = new Float64Array(ncap + 1)
      const ps = new Float64Array(ncap)
      const dev = new Int32Array(ncap)
      const fl = new Uint8Array(ncap)
      vs.set(this.vs.subarray(0, lo))
      ps.set(this.ps.subarray(0, lo))
      dev.set(this.dev.subarray(0, lo))
      fl.set(this.fl.subarray(0, lo))
      vs.set(this.vs.subarray(hi, n + 1), lo + m)
      ps.set(this.ps.subarray(hi, n), lo + m)
      dev.set(this.dev.subarray(hi, n), lo + m)
      fl.set(this.fl.subarray(hi, n), lo + m)
      this.vs = vs
      this.ps = ps
      this.dev = dev
      this.fl = fl
    } else if (m !== hi - lo) {
      this.vs.copyWithin(lo + m, hi, n + 1)
      this.ps.copyWithin(lo + m, hi, n)
      this.dev.copyWithin(lo + m, hi, n)
      this.fl.copyWithin(lo + m, hi, n)
    }
    for (let k = 0; k < m; k++) {
      const e = list[k]!
      this.vs[lo + k] = e.vstart
      this.ps[lo + k] = e.pstart
      this.dev[lo + k] = e.device
      this.fl[lo + k] = e.flags
    }
    this.vs[count] = this.size
    this.n = count
  }
}

function checkGeneration(g: unknown): void {
  if (!isOffset(g)) throw new VstorError('BAD_ARGUMENT', `generation ${String(g)} must be a non-negative integer`)
}
