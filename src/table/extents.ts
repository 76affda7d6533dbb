// Validation and normalization of Extent lists handed to the table.
//
// Invariant of every list returned by normalize(): fresh objects (callers may
// mutate them), sorted, tiling [start, end) exactly, lengths > 0, NO_DEVICE
// extents have pstart 0, and no two neighbours are mergeable.

import { VstorError } from '../errors'
import type { Extent } from './table'

import { ALL_FLAGS as FLAG_MASK, Flag, NO_DEVICE } from './flags'
const MAX_DEVICE = 2 ** 31 - 1 // device ids live in an Int32Array

/** Merge rule (claims 36-40): same flags, same device, and unmapped or contiguous on the device. */
export function mergeable(a: Extent, b: Extent): boolean {
  return a.flags === b.flags && a.device === b.device && (a.device === NO_DEVICE || a.pstart + a.length === b.pstart)
}

/** Append `e` (owned by the caller's list) to `out`, merging it into the last entry when allowed. */
export function pushMerged(out: Extent[], e: Extent): void {
  const last = out[out.length - 1]
  if (last && mergeable(last, e)) last.length += e.length
  else out.push(e)
}

export function checkFlags(flags: unknown, what: string): number {
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > FLAG_MASK) {
    throw new VstorError(
      'BAD_ARGUMENT',
      `${what}: flags ${String(flags)} are not an OR of Invalid(1), NoWrite(2), Zero(4), Error(8), Shared(16)`,
    )
  }
  return flags
}

export function isOffset(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** A validated copy of one extent; a NO_DEVICE extent gets pstart 0. */
export function checkExtent(e: Extent, what: string): Extent {
  if (!e || typeof e !== 'object') throw new VstorError('BAD_ARGUMENT', `${what}: an extent is not an object`)
  const { vstart, length, device, pstart, flags } = e
  if (!isOffset(vstart)) throw new VstorError('BAD_ARGUMENT', `${what}: extent vstart ${String(vstart)} is not a byte offset`)
  if (!isOffset(length) || length === 0) {
    throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${vstart} has length ${String(length)}; lengths must be positive integers`)
  }
  if (!Number.isSafeInteger(vstart + length)) throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${vstart} ends past 2^53`)
  if (typeof device !== 'number' || !Number.isInteger(device) || device < NO_DEVICE || device > MAX_DEVICE) {
    throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${vstart} has device ${String(device)}; use a device id or NO_DEVICE (-1)`)
  }
  if (device !== NO_DEVICE && !isOffset(pstart)) {
    throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${vstart} has pstart ${String(pstart)}, not a byte offset`)
  }
  checkFlags(flags, `${what}: extent at ${vstart}`)
  return { vstart, length, device, pstart: device === NO_DEVICE ? 0 : pstart, flags }
}

/** Validate that `extents` tile [start, end) (any order) and return them normalized (see invariant above). */
export function normalize(start: number, end: number, extents: readonly Extent[], what: string): Extent[] {
  if (!Array.isArray(extents)) throw new VstorError('BAD_ARGUMENT', `${what}: extents must be an array`)
  const list = extents.map((e) => checkExtent(e, what))
  let sorted = true
  for (let i = 1; i < list.length && sorted; i++) sorted = list[i - 1]!.vstart <= list[i]!.vstart
  if (!sorted) list.sort((a, b) => a.vstart - b.vstart)
  const out: Extent[] = []
  let pos = start
  for (const e of list) {
    if (e.vstart < pos) throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${e.vstart} overlaps the range before it (up to ${pos})`)
    if (e.vstart > pos) throw new VstorError('BAD_ARGUMENT', `${what}: [${pos}, ${e.vstart}) is not covered by any extent`)
    pos += e.length
    if (pos > end) throw new VstorError('BAD_ARGUMENT', `${what}: extent at ${e.vstart} ends at ${pos}, past the end ${end}`)
    pushMerged(out, e)
  }
  if (pos !== end) throw new VstorError('BAD_ARGUMENT', `${what}: [${pos}, ${end}) is not covered by any extent`)
  return out
}

/**
 * Whether `after` only write-protects `before` (both tile one range): every byte keeps its device
 * and place and its flags, plus at most NoWrite. Reads in flight there read what they would read
 * after the change, so applying it need not wait for them (a move's fence), only for writes.
 */
export function onlyWriteProtects(before: readonly Extent[], after: readonly Extent[]): boolean {
  let i = 0
  let j = 0
  let at = before[0]?.vstart ?? 0
  while (i < before.length && j < after.length) {
    const a = before[i]!
    const b = after[j]!
    if (a.device !== b.device || (a.flags | Flag.NoWrite) !== (b.flags | Flag.NoWrite) || (a.flags & ~b.flags) !== 0) return false
    if (a.device !== NO_DEVICE && a.pstart + (at - a.vstart) !== b.pstart + (at - b.vstart)) return false
    at = Math.min(a.vstart + a.length, b.vstart + b.length)
    if (at === a.vstart + a.length) i++
    if (at === b.vstart + b.length) j++
  }
  return i === before.length && j === after.length
}
