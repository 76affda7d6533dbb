// Copying one chunk of a move: its old extents' bytes onto its new pieces,
// through the device layer.
//
// Invariants:
//   * when copyChunk resolves, the new pieces hold (written, maybe not yet
//     durable) what the old extents held when it read them; it returns those
//     bytes and their fdatasync, started, which resolves once they are
//     durable (each segment's writeback was started as soon as it was
//     written, so little is left for the fdatasync); it reads through this host's page cache (the kernel's
//     readahead streams from one chunk into the next), so what it read may be
//     older than the device if another host wrote there: nothing relies on it
//     being current;
//   * updateChunk (under the fence) rereads the old extents (every agent's
//     writes there done: through this host's page cache when every agent is
//     on this host, which then holds their newest bytes; else after dropping
//     this host's cached pages, every remote agent's writes synced to the
//     device before it acked the fence), and rewrites only the blocks that differ
//     from what copyChunk wrote (kept in memory, so the new pieces need not be
//     read back), then fdatasyncs the devices it wrote to; after a restart it
//     compares with what the new pieces hold (read fresh too) and fdatasyncs
//     them all (equal bytes may sit unsynced in the page cache, written by the
//     process that died);
//   * a buffer belongs to one call at a time: jobs running side by side never
//     share one; one given back (giveBuffer) is no longer used by its giver;
//     under the fence only segment-sized buffers are used, faulted in before
//     the fence (fresh memory costs ~2.5 ms per MiB to fault in on some VMs).

import { VstorError } from '../../errors'
import { MiB } from '../../size'
import type { Extent } from '../../table/table'
import type { Piece } from '../allocator'
import type { Ctx } from '../context'
import { dropFresh } from '../devio'

/**
 * Bytes read and written per request, and segments in flight at once (each read, then written).
 * 1 MiB x 4 copied a cold 1 GiB file at ~930 MB/s here, 4 MiB x 2 at ~700, 16 MiB x 1 at ~470
 * (dd: ~1,100): the device works on several requests at once. A detached controller has 8 libuv
 * threads (index.ts), so SQLite's statements still find one free.
 */
const SEGMENT = MiB
const DEPTH = 4
/** Granularity of the comparison (and of the rewrites it makes). */
const BLOCK = 64 * 1024

/**
 * Chunk buffers given back, for the next call: faulting in fresh memory is slow (a fresh 16 MiB costs
 * 6-40 ms, more than copying the chunk from the page cache). A spare serves any request up to its
 * length (chunks vary in length); the smallest goes first when there are too many; all are dropped
 * when unused for a while.
 */
const spare: Buffer[] = []
const SPARES = 6
let spareTimer: NodeJS.Timeout | null = null

/** The longest chunk a move copies (its buffers are made that long, so longer chunks later reuse them). */
export const CHUNK_MAX = 64 * MiB

/**
 * n bytes, from a spare if one is long enough, else fresh with `room` bytes behind them (faulted in
 * only as used, unless `fault`: then written once now).
 */
function takeBuffer(n: number, room = n, fault = false): Buffer {
  let best = -1
  for (let i = 0; i < spare.length; i++) if (spare[i]!.length >= n && (best < 0 || spare[i]!.length < spare[best]!.length)) best = i
  if (best >= 0) return spare.splice(best, 1)[0]!.subarray(0, n)
  const b = Buffer.allocUnsafe(Math.max(n, room))
  if (fault) b.fill(0)
  return b.subarray(0, n)
}

/** The segment buffers updateChunk takes under the fence, made spare now (outside the stall) unless they are already. */
function warmSegments(): void {
  const bufs = Array.from({ length: DEPTH }, () => takeBuffer(SEGMENT, SEGMENT, true))
  for (const b of bufs) giveBuffer(b)
}

/** The caller is done with a buffer copyChunk returned: the next call may reuse it (all of its memory). */
export function giveBuffer(b: Buffer): void {
  if (b.byteOffset !== 0 || b.buffer.byteLength < MiB) return // a slice of Node's shared pool is not ours to keep
  spare.push(Buffer.from(b.buffer, 0, b.buffer.byteLength)) // large buffers own their ArrayBuffer
  spare.sort((x, y) => y.length - x.length)
  spare.splice(SPARES)
  if (spareTimer) clearTimeout(spareTimer)
  spareTimer = setTimeout(() => void spare.splice(0), 10_000).unref()
}

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

/** fn on every segment with its offset in the chunk, DEPTH at a time; settles once none is running, rejecting with the first error. */
async function pooled(segs: Segment[], fn: (s: Segment, at: number) => Promise<void>): Promise<void> {
  let off = 0
  const at = segs.map((s) => (off += s.length) - s.length)
  let next = 0
  let failed = false
  const worker = async (): Promise<void> => {
    while (!failed && next < segs.length) {
      const i = next++
      await fn(segs[i]!, at[i]!).catch((e: unknown) => {
        failed = true
        throw e
      })
    }
  }
  const ends = await Promise.allSettled(Array.from({ length: Math.min(DEPTH, segs.length) }, worker))
  const bad = ends.find((r) => r.status === 'rejected')
  if (bad) throw bad.reason
}

/** What copyChunk copied: the bytes (to compare against under the fence; give them back with giveBuffer after) and their fdatasync, running. */
export interface PreCopy {
  data: Buffer
  /** Resolves once the new pieces hold `data` durably; its rejection is handled only by whoever awaits it. */
  durable: Promise<void>
}

/** Copy the old extents onto the new pieces (reads and writes overlapped), then start their fdatasync (the fence need not wait for it, the switch must). */
export async function copyChunk(ctx: Ctx, orig: Extent[], dest: Piece[]): Promise<PreCopy> {
  const dev = devices(ctx)
  const segs = segments(orig, dest)
  warmSegments()
  const data = takeBuffer(
    segs.reduce((n, s) => n + s.length, 0),
    CHUNK_MAX,
  )
  try {
    await pooled(segs, async (s, at) => {
      const b = data.subarray(at, at + s.length)
      await (await dev(s.src)).readAt(b, s.srcPos)
      const dst = await dev(s.dst)
      await dst.writeAt(b, s.dstPos)
      void dst.writeBehind(s.dstPos, s.length) // its writeback overlaps the next reads; the fdatasync below waits less
    })
  } catch (e) {
    giveBuffer(data) // no I/O into it is running (pooled settled)
    throw e
  }
  const durable = (async () => {
    for (const id of new Set(dest.map((p) => p.device))) await (await dev(id)).syncP()
  })()
  durable.catch(() => {}) // awaited (and its error thrown) by the step, unless the step ends before
  return { data, durable }
}

/**
 * Under the fence: make the new pieces equal to the old extents, writing only the blocks that differ
 * from `prev` (what copyChunk wrote there), or after a restart from what the new pieces hold; returns
 * the bytes written. `fresh`: some agent may be on another host (see sharesCache), read the device.
 */
export async function updateChunk(ctx: Ctx, orig: Extent[], dest: Piece[], prev: Buffer | null, fresh: boolean): Promise<number> {
  const dev = devices(ctx)
  const segs = segments(orig, dest)
  const synced = new Set<number>(prev ? [] : dest.map((p) => p.device))
  let written = 0
  // once for the whole chunk, not per request: the readahead of one request then serves the next
  for (const s of segs) {
    if (fresh) dropFresh(await dev(s.src), s.srcPos, s.length)
    if (!prev) dropFresh(await dev(s.dst), s.dstPos, s.length)
  }
  // a segment's worth per request in flight (not a whole chunk: fresh memory is slow to fault in)
  const free = Array.from({ length: Math.min(DEPTH, segs.length) }, () => ({
    mine: takeBuffer(SEGMENT),
    theirs: prev ? null : takeBuffer(SEGMENT),
  }))
  try {
    await pooled(segs, async (s, at) => {
      const bufs = free.pop()!
      try {
        const b = bufs.mine.subarray(0, s.length)
        const t = prev ? prev.subarray(at, at + s.length) : bufs.theirs!.subarray(0, s.length)
        const dst = await dev(s.dst)
        await Promise.all([(await dev(s.src)).readAt(b, s.srcPos), prev ? null : dst.readAt(t, s.dstPos)])
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
      } finally {
        free.push(bufs)
      }
    })
  } finally {
    for (const f of free) for (const b of [f.mine, f.theirs]) if (b) giveBuffer(b)
  }
  for (const id of synced) await (await dev(id)).syncP()
  return written
}
