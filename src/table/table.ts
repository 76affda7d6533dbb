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
//
// API CONTRACT (implemented by the table module; other modules rely on it):

export const enum Flag {
  Invalid = 1, // no usable mapping: I/O fails (EIO), agent sends an `unmapped` fault
  NoWrite = 2, // reads pass; writes fault `write-protected` to the controller
  Zero = 4, // reads return zeros, no device I/O; first write faults `unallocated`
  Error = 8, // the device failed here: I/O fails (EIO)
}
export const ALL_FLAGS = 15
export const NO_DEVICE = -1

export type StateName = 'invalid' | 'no-write' | 'zero' | 'error'
export const STATE_FLAGS: Record<StateName, Flag> = {
  invalid: Flag.Invalid,
  'no-write': Flag.NoWrite,
  zero: Flag.Zero,
  error: Flag.Error,
}

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

export declare class Table {
  /** A table of `size` bytes: either the given tiling extents, or one NO_DEVICE extent with `flags` (default Invalid). */
  constructor(size: number, extents?: Extent[], generation?: number)
  readonly size: number
  generation: number
  readonly count: number
  /** Index of the extent containing offset (0 <= offset < size); binary search. */
  find(offset: number): number
  vstart(i: number): number
  length(i: number): number
  end(i: number): number
  device(i: number): number
  pstart(i: number): number
  flags(i: number): number
  get(i: number): Extent
  all(): Extent[]
  /** Extents overlapping [start, end), clipped to it (pstart adjusted). */
  slice(start: number, end: number): Extent[]
  /**
   * Plan replacing [start, end) with `extents` (which must tile it), without
   * changing the table. The result is normalized: edges are split, and it is
   * widened to swallow neighbours it merges with, so apply() keeps the invariant.
   */
  plan(start: number, end: number, extents: Extent[]): Change
  /** Plan setting and clearing flags over [start, end). */
  planFlags(start: number, end: number, set: number, clear: number): Change
  /** Apply a Change (as from plan) in one swap; generation += 1 (or = gen if given). */
  apply(change: Change, generation?: number): void
  assertInvariant(): void
  /** Bytes mapped to a device (device != NO_DEVICE). */
  allocated(): number
  clone(): Table
  /** Binary form for the wire: see table/codec. */
  static encode(extents: Extent[] | Table): Buffer
  static decodeExtents(buf: Buffer): Extent[]
  static fromBuffer(size: number, buf: Buffer, generation: number): Table
}
