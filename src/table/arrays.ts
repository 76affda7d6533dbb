// Checks and rewrites on the struct-of-arrays form (see codec.ExtentArrays),
// and on Extent lists, that the Table needs but that do not touch its state.

import { isOffset } from './extents'
import type { ExtentArrays } from './codec'
import type { Extent } from './table'

import { ALL_FLAGS as FLAG_MASK, NO_DEVICE } from './flags'

/** What breaks the table invariant (see table.ts) in `a` for a disk of `size` bytes, or null. */
export function arraysBroken(a: ExtentArrays, size: number): string | null {
  const { count: n, vstart: vs, pstart: ps, device: dev, flags: fl } = a
  if (!isOffset(size) || size === 0) return `size ${size}`
  if (n < 1 || vs.length < n + 1 || ps.length < n || dev.length < n || fl.length < n) return `count ${n} vs capacity`
  if (vs[0] !== 0) return `first extent starts at ${vs[0]}`
  if (vs[n] !== size) return `last extent ends at ${vs[n]}, size is ${size}`
  for (let i = 0; i < n; i++) {
    const s = vs[i]!
    const e = vs[i + 1]!
    if (!(e > s) || !Number.isSafeInteger(e)) return `extent ${i} [${s}, ${e}) is empty, reversed or not integral`
    const d = dev[i]!
    const p = ps[i]!
    if (d < NO_DEVICE) return `extent ${i} has device ${d}`
    if (!isOffset(p)) return `extent ${i} has pstart ${p}`
    if (d === NO_DEVICE && p !== 0) return `extent ${i} has no device but pstart ${p}`
    if (fl[i]! & ~FLAG_MASK) return `extent ${i} has flags ${fl[i]}`
    if (i > 0 && fl[i - 1] === fl[i] && dev[i - 1] === d && (d === NO_DEVICE || ps[i - 1]! + (s - vs[i - 1]!) === p)) {
      return `extents ${i - 1} and ${i} should have been merged`
    }
  }
  return null
}

/** Merge mergeable neighbours in place and coerce NO_DEVICE pstart to 0 (decoded tables from a lenient peer). */
export function compact(a: ExtentArrays): void {
  const { count: n, vstart: vs, pstart: ps, device: dev, flags: fl } = a
  if (n === 0) return
  if (dev[0] === NO_DEVICE) ps[0] = 0
  let w = 0
  for (let r = 1; r < n; r++) {
    const d = dev[r]!
    if (d === NO_DEVICE) ps[r] = 0
    if (fl[w] === fl[r] && dev[w] === d && (d === NO_DEVICE || ps[w]! + (vs[r]! - vs[w]!) === ps[r])) continue
    w++
    if (w === r) continue // nothing merged yet: no copying on the common path
    vs[w] = vs[r]!
    ps[w] = ps[r]!
    dev[w] = d
    fl[w] = fl[r]!
  }
  vs[w + 1] = vs[n]!
  a.count = w + 1
}

/** Parts of the mapped pieces of `before` that no extent of `after` maps (same device, overlapping pstart range). */
export function subtractDeviceRanges(before: Extent[], after: Extent[]): Extent[] {
  const out: Extent[] = []
  for (const old of before) {
    if (old.device === NO_DEVICE) continue
    let parts = [{ p: old.pstart, e: old.pstart + old.length }]
    for (const n of after) {
      if (n.device !== old.device) continue
      const ns = n.pstart
      const ne = n.pstart + n.length
      parts = parts.flatMap((x) =>
        ne <= x.p || ns >= x.e ? [x] : [...(x.p < ns ? [{ p: x.p, e: ns }] : []), ...(ne < x.e ? [{ p: ne, e: x.e }] : [])],
      )
    }
    for (const x of parts)
      out.push({ vstart: old.vstart + (x.p - old.pstart), length: x.e - x.p, device: old.device, pstart: x.p, flags: old.flags })
  }
  return out
}
