// Copying one chunk of a move: its old extents' bytes onto its new pieces,
// through the device layer.
//
// Invariants:
//   * when copyChunk resolves, the new pieces hold what the old extents held
//     when it read them, fdatasynced; it returns those bytes;
//   * updateChunk (under the fence) rereads the old extents and rewrites only
//     the blocks that differ from what copyChunk wrote (kept in memory, so
//     the new pieces need not be read back), then fdatasyncs the devices it
//     wrote to; after a restart it compares with what the new pieces hold and
//     fdatasyncs them all (equal bytes may sit unsynced in the page cache,
//     written by the process that died);
//   * buffers belong to one call: jobs running side by side never share them.

import { VstorError } from '../../errors'
import { MiB } from '../../size'
import type { Extent } from '../../table/table'
import type { Piece } from '../allocator'
import type { Ctx } from '../context'
import { readFresh } from '../devio'

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

function devices(ctx: Ctx) {
  return async (id: number) => {
    const d = ctx.state.devices.get(id)
    if (!d) throw new VstorError('INTERNAL', `device #${id} left the pool during a move`)
    return ctx.io.get(d)
  }
}

/** Copy the old extents onto the new pieces (reads and writes overlapped), fdatasync; returns the bytes copied, kept to compare against under the fence. */
export async function copyChunk(ctx: Ctx, orig: Extent[], dest: Piece[]): Promise<Buffer> {
  const dev = devices(ctx)
  const segs = segments(orig, dest)
  const data = Buffer.allocUnsafe(segs.reduce((n, s) => n + s.length, 0))
  let writing: Promise<void> = Promise.resolve()
  try {
    let at = 0
    for (const s of segs) {
      const b = data.subarray(at, at + s.length)
      at += s.length
      await readFresh(await dev(s.src), b, s.srcPos)
      await writing
      writing = (await dev(s.dst)).writeAt(b, s.dstPos)
    }
    await writing
  } catch (e) {
    await writing.catch(() => {}) // never leave a write running (or its rejection unhandled)
    throw e
  }
  for (const id of new Set(dest.map((p) => p.device))) await (await dev(id)).syncP()
  return data
}

/**
 * Under the fence: make the new pieces equal to the old extents, writing only the blocks that differ
 * from `prev` (what copyChunk wrote there), or after a restart from what the new pieces hold; returns
 * the bytes written.
 */
export async function updateChunk(ctx: Ctx, orig: Extent[], dest: Piece[], prev: Buffer | null): Promise<number> {
  const dev = devices(ctx)
  const mine = Buffer.allocUnsafe(SEGMENT)
  const read = prev ? null : Buffer.allocUnsafe(SEGMENT)
  const synced = new Set<number>(prev ? [] : dest.map((p) => p.device))
  let written = 0
  let at = 0
  for (const s of segments(orig, dest)) {
    const b = mine.subarray(0, s.length)
    const dst = await dev(s.dst)
    let t: Buffer
    if (read) {
      t = read.subarray(0, s.length)
      await Promise.all([readFresh(await dev(s.src), b, s.srcPos), readFresh(dst, t, s.dstPos)])
    } else {
      t = prev!.subarray(at, at + s.length)
      await readFresh(await dev(s.src), b, s.srcPos)
    }
    at += s.length
    for (let i = 0; i < s.length;) {
      const same = (x: number): boolean => b.subarray(x, x + BLOCK).equals(t.subarray(x, x + BLOCK))
      if (same(i)) {
        i += BLOCK
        continue
      }
      let end = i + BLOCK
      while (end < s.length && !same(end)) end += BLOCK
      end = Math.min(end, s.length)
      await dst.writeAt(b.subarray(i, end), s.dstPos + i)
      synced.add(s.dst)
      written += end - i
      i = end
    }
  }
  for (const id of synced) await (await dev(id)).syncP()
  return written
}
