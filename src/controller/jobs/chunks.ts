// A move job's chunks: which range it moves next, the new space it takes for it (and gives back),
// and how long a chunk is.
//
// Invariants:
//   * a piece taken for a job is in `taken` until a switch maps it or giveBack returns it to the
//     pool (as dirty: it may hold a copy), so an undo never leaks space;
//   * a planned chunk's clean pieces are recorded dirty in a transaction that reaches the disk
//     before any copy into them (moveStep's barrier), so a crash never leaves another disk's bytes
//     in space the pool thinks clean;
//   * a chunk lies inside one extent; a job's first is FIRST_CHUNK long (nothing is known yet of the
//     load, nor whether the agents wrote since their last ack, so its copy is reread under the
//     fence: keep that short); after a chunk agents served requests during, the next is CHUNK
//     long; after one they did not, twice the last, up to CHUNK_MAX.

import { VstorError } from '../../errors'
import { MiB } from '../../size'
import { Flag, NO_DEVICE, type Extent } from '../../table/table'
import type { Piece } from '../allocator'
import type { Ctx } from '../context'
import type { DiskRec } from '../state'
import { CHUNK_MAX } from './copy'
import type { JobRec } from './runner'

export const CHUNK = 16 * MiB
export const FIRST_CHUNK = 4 * MiB

/** What to move: extents of one disk in [start, end), not already on `to`; only those on `from` if given. */
export interface MoveTask {
  disk: string
  uid: string
  start: number
  end: number
  to: number[]
  from?: number
}
export interface Plan {
  start: number
  end: number
  orig: Extent[]
  dest: Piece[]
}
/** Destination pieces taken from the pool in this process and not mapped yet, per job id. */
export const taken = new Map<number, Piece[]>()
/** The next chunk, planned and its space taken in the previous chunk's switch, per job id. */
export const planned = new Map<number, Plan>()
/** The length of the job's next chunk, per job id (FIRST_CHUNK .. CHUNK_MAX). */
const lengths = new Map<number, number>()

export function needsMove(e: Extent, task: MoveTask): boolean {
  if (e.device === NO_DEVICE || e.flags & (Flag.Error | Flag.Invalid)) return false
  return task.from !== undefined ? e.device === task.from : !task.to.includes(e.device)
}

/** Bytes of the task still to move. */
export function bytesToMove(disk: DiskRec, task: MoveTask): number {
  return disk.table
    .slice(task.start, task.end)
    .filter((e) => needsMove(e, task))
    .reduce((s, e) => s + e.length, 0)
}

export function liveDisk(ctx: Ctx, task: MoveTask): DiskRec {
  const d = ctx.state.disks.get(task.disk)
  if (!d || d.uid !== task.uid) throw new VstorError('NOT_FOUND', `disk '${task.disk}' was deleted during the move`)
  return d
}

/**
 * Under the lock: the job's next chunk from `from`, its new space taken from the pool (in memory);
 * null when nothing is left to move. Its clean pieces must be recorded dirty (`recordDirty`) in a
 * transaction that commits before any copy into them.
 */
export function planChunk(ctx: Ctx, job: JobRec, task: MoveTask, from: number): Plan | null {
  const disk = liveDisk(ctx, task)
  const e = disk.table.slice(Math.max(from, task.start), task.end).find((x) => needsMove(x, task))
  if (!e) return null
  const start = e.vstart
  const end = Math.min(e.vstart + e.length, start + chunkLength(job))
  return { start, end, orig: disk.table.slice(start, end), dest: take(ctx, job, task, end - start) }
}

/** Under the lock: `bytes` of new space on the task's healthy targets, taken from the pool for the job. */
function take(ctx: Ctx, job: JobRec, task: MoveTask, bytes: number): Piece[] {
  const { state } = ctx
  const dest = state.alloc.allocate(
    bytes,
    task.to.filter((id) => state.devices.get(id)?.health === 'ok'),
  )
  state.alloc.take(dest)
  taken.set(job.id, [...(taken.get(job.id) ?? []), ...dest])
  return dest
}

/** In a transaction: the clean pieces of `dest` recorded dirty. */
export async function recordDirty(ctx: Ctx, dest: Piece[]): Promise<void> {
  for (const p of dest.filter((x) => !x.dirty))
    await ctx.state.db.queue('INSERT INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [p.device, p.pstart, p.length])
}

/** Under the lock: taken pieces recorded dirty durably, in a transaction of their own (all given back if that fails). */
export async function recordTaken(ctx: Ctx, job: JobRec, dest: Piece[]): Promise<void> {
  await ctx.state.db
    .tx(() => recordDirty(ctx, dest))
    .catch((e: unknown) => {
      giveBack(ctx, job)
      throw e
    })
}

/** Under the lock: new space for a chunk, recorded dirty durably. */
export async function takeDest(ctx: Ctx, job: JobRec, task: MoveTask, bytes: number): Promise<Piece[]> {
  const dest = take(ctx, job, task, bytes)
  await recordTaken(ctx, job, dest)
  return dest
}

/** Under the lock: the taken space goes back to the pool (dirty: it may hold a copy); no chunk is planned. */
export function giveBack(ctx: Ctx, job: JobRec): void {
  const t = taken.get(job.id)
  if (t)
    ctx.state.alloc.give(
      t.filter((p) => ctx.state.devices.has(p.device)),
      true,
    )
  taken.delete(job.id)
  planned.delete(job.id)
}

/** The length of the job's next chunk (at most: a chunk ends with its extent). */
export function chunkLength(job: JobRec): number {
  return lengths.get(job.id) ?? FIRST_CHUNK
}

/** After a chunk: the next one's length (see the top); `busy`: some agent served requests during it. */
export function nextLength(job: JobRec, busy: boolean): void {
  lengths.set(job.id, busy ? CHUNK : Math.min(CHUNK_MAX, 2 * chunkLength(job)))
}

/** The job's chunk state in this process is gone (its end or its undo): the next chunk is a first one. */
export function forgetChunks(job: JobRec): void {
  lengths.delete(job.id)
}
