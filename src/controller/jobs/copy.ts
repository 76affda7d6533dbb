// Copying one chunk of a move: its old extents' bytes onto its new pieces,
// through the device layer.
//
// Invariants:
//   * when copyChunk resolves, the new pieces hold what the old extents held
//     when it read them, durably: 'copy' and 'compare' fdatasync every
//     destination device (also where 'compare' found the bytes equal: they
//     may sit unsynced in the page cache since an earlier process), 'update'
//     only those it wrote to (the pre-copy before it synced the rest);
//   * 'compare' and 'update' read both sides and write only the blocks that
//     differ, so a chunk copied once before its fence costs, under the fence,
//     a re-read (mostly from the page cache) and a small sync, if any;
//   * buffers belong to one call: jobs running side by side never share them.

import { VstorError } from '../../errors'
import { MiB } from '../../size'
import type { Extent } from '../../table/table'
import type { Piece } from '../allocator'
import type { Ctx } from '../context'

/** Bytes read and written per request. */
const SEGMENT = 1 * MiB
/** Granularity of the comparison (and of the rewrites it makes). */
const BLOCK = 64 * 1024

interface Segment {
  src: number
  srcPos: number
  dst: number
  dstPos: number
  length: number
}

/** The old extents paired with the new pieces in order, cut into segments of at most SEGMENT bytes. */
function segments(orig: Extent[], dest: Piece[]): Segment[] {
  const out: Segment[] = []
  const left = dest.map((p) => ({ ...p }))
  for (const e of orig) {
    for (let done = 0; done < e.length;) {
      const p = left[0]
      if (!p) throw new VstorError('INTERNAL', 'a move chunk has less new space than old')
      const n = Math.min(e.length - done, p.length, SEGMENT)
      out.push({ src: e.device, srcPos: e.pstart + done, dst: p.device, dstPos: p.pstart, length: n })
      done += n
      if (n === p.length) left.shift()
      else left[0] = { ...p, pstart: p.pstart + n, length: p.length - n }
    }
  }
  return out
}

/** The chunk's extents mapped onto its new pieces, each keeping its flags. */
export function onto(orig: Extent[], dest: Piece[]): Extent[] {
  const out: Extent[] = []
  const left = dest.map((p) => ({ ...p }))
  for (const e of orig) {
    let v = e.vstart
    let n = e.length
    while (n > 0) {
      const p = left[0]!
      const k = Math.min(n, p.length)
      out.push({ vstart: v, length: k, device: p.device, pstart: p.pstart, flags: e.flags })
      v += k
      n -= k
      if (k === p.length) left.shift()
      else left[0] = { ...p, pstart: p.pstart + k, length: p.length - k }
    }
  }
  return out
}

/** Copy, or bring up to date, the new pieces from the old extents (see the invariants); returns the bytes written. */
export async function copyChunk(ctx: Ctx, orig: Extent[], dest: Piece[], how: 'copy' | 'compare' | 'update'): Promise<number> {
  const dev = async (id: number) => {
    const d = ctx.state.devices.get(id)
    if (!d) throw new VstorError('INTERNAL', `device #${id} left the pool during a move`)
    return ctx.io.get(d)
  }
  const bufs = [Buffer.allocUnsafe(SEGMENT), Buffer.allocUnsafe(SEGMENT)]
  const theirs = how === 'copy' ? null : Buffer.allocUnsafe(SEGMENT)
  const synced = new Set<number>(how === 'update' ? [] : dest.map((p) => p.device))
  let written = 0
  let writing: Promise<void> = Promise.resolve()
  const segs = segments(orig, dest)
  try {
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!
      // the write of segment i-2 used this buffer; it ended before segment i-1's write started
      const b = bufs[i % 2]!.subarray(0, s.length)
      const dst = await dev(s.dst)
      if (theirs) {
        const t = theirs.subarray(0, s.length)
        await Promise.all([(await dev(s.src)).readAt(b, s.srcPos), dst.readAt(t, s.dstPos)])
        for (let at = 0; at < s.length;) {
          const n = Math.min(BLOCK, s.length - at)
          if (b.subarray(at, at + n).equals(t.subarray(at, at + n))) {
            at += n
            continue
          }
          let end = at + n
          while (end < s.length && !b.subarray(end, end + BLOCK).equals(t.subarray(end, end + BLOCK))) end = Math.min(s.length, end + BLOCK)
          await dst.writeAt(b.subarray(at, end), s.dstPos + at)
          synced.add(s.dst)
          written += end - at
          at = end
        }
        continue
      }
      await (await dev(s.src)).readAt(b, s.srcPos)
      await writing
      writing = dst.writeAt(b, s.dstPos)
      written += s.length
    }
    await writing
  } catch (e) {
    await writing.catch(() => {}) // never leave a write running (or its rejection unhandled)
    throw e
  }
  for (const id of synced) await (await dev(id)).syncP()
  return written
}
