// Moving a disk's data to other devices while it is in use (LVM's pvmove),
// one chunk of a few MiB at a time, through the no-write state:
//   fence:  NoWrite on the chunk, committed with the checkpoint, pushed; wait
//           until every known agent applied it (so no write to the old place is
//           in flight or can start: writes there fault and wait);
//   copy:   old place → new place through the device layer, fdatasync;
//   switch: map the chunk to the new place with its old flags, committed with
//           the checkpoint (the old place goes to quarantine), pushed; held
//           writes retry once their agent applied the switch.
//
// Invariants:
//   * reads go on from the old place throughout (NoWrite lets them through);
//   * a write is never lost or torn: none reaches the old place after the fence
//     is acked, and none reaches the new place before the switch;
//   * the fenced range is busy (faults there wait) from the fence until the
//     switch or the undo; after a restart the resume hook marks it busy again
//     before the controller serves anyone;
//   * if agents do not ack the fence in time the chunk is undone (old flags
//     restored, new space given back) and the job fails naming them; moved
//     chunks stay moved, and running the move again finishes the rest.

import { MiB } from '../../size'
import { VstorError } from '../../errors'
import { Flag, NO_DEVICE, type Extent } from '../../table/table'
import type { Piece } from '../allocator'
import { busyAt, markBusy, type Ctx } from '../context'
import { log } from '../log'
import { isEmpty, type DiskRec } from '../state'
import type { JobRec } from './runner'

export const CHUNK = 4 * MiB
/** Pause after each chunk, as a fraction of its copy time, so foreground I/O keeps most of its speed. */
const THROTTLE = 0.25

/** What to move: extents of one disk in [start, end), not already on `to`; only those on `from` if given. */
export interface MoveTask {
  disk: string
  uid: string
  start: number
  end: number
  to: number[]
  from?: number
}
interface Chunk {
  start: number
  end: number
  orig: Extent[]
  dest: Piece[]
  fencedAt: number
}
export interface MoveCheckpoint {
  cursor?: number
  chunk?: Chunk
}

/** Busy releases of fenced chunks, per job id (memory only: re-made on resume). */
const held = new Map<number, () => void>()
/** Destination pieces taken from the pool in this process, per job id. */
const taken = new Map<number, Piece[]>()

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

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

function liveDisk(ctx: Ctx, task: MoveTask): DiskRec {
  const d = ctx.state.disks.get(task.disk)
  if (!d || d.uid !== task.uid) throw new VstorError('NOT_FOUND', `disk '${task.disk}' was deleted during the move`)
  return d
}

/** Resume hook: a chunk fenced before the restart is busy again before anyone can fault on it. */
export function holdAgain(ctx: Ctx, job: JobRec, task: MoveTask, cp: MoveCheckpoint): void {
  if (cp.chunk && !held.has(job.id)) held.set(job.id, markBusy(ctx, task.uid, cp.chunk.start, cp.chunk.end))
}

/** One chunk: fence, copy, switch. 'done' when nothing is left to move in the task. */
export async function moveStep(
  ctx: Ctx,
  job: JobRec,
  task: MoveTask,
  cp: MoveCheckpoint,
  save: () => Promise<void>,
): Promise<'more' | 'done'> {
  const { state } = ctx
  let fenceGen: number
  if (!cp.chunk) {
    const r = await state.lock.run(async () => {
      const disk = liveDisk(ctx, task)
      // a fresh job's checkpoint is {}: it starts at the task's start
      const e = disk.table.slice(Math.max(cp.cursor ?? task.start, task.start), task.end).find((x) => needsMove(x, task))
      if (!e) return 'done' as const
      const start = e.vstart
      const end = Math.min(e.vstart + e.length, start + CHUNK)
      const busy = busyAt(ctx, disk.uid, start, end)
      if (busy) return { wait: busy.done }
      const dest = state.alloc.allocate(
        end - start,
        task.to.filter((id) => state.devices.get(id)?.health === 'ok'),
      )
      state.alloc.take(dest)
      taken.set(job.id, dest)
      held.set(job.id, markBusy(ctx, disk.uid, start, end))
      const orig = disk.table.slice(start, end)
      const change = disk.table.plan(
        start,
        end,
        orig.map((x) => ({ ...x, flags: x.flags | Flag.NoWrite })),
      )
      cp.cursor = start
      cp.chunk = { start, end, orig, dest, fencedAt: Date.now() }
      const gen = await state.commitChange(disk, change, { extra: save })
      if (!isEmpty(change)) ctx.outbox.update(disk, change, gen)
      return gen
    })
    if (r === 'done') return 'done'
    if (typeof r !== 'number') {
      await r.wait
      return 'more'
    }
    fenceGen = r
  } else {
    // resumed: the fence is in the table every agent reloads; new space is taken afresh
    fenceGen = await state.lock.run(async () => {
      liveDisk(ctx, task)
      const c = cp.chunk!
      if (!taken.has(job.id)) {
        c.dest = state.alloc.allocate(
          c.end - c.start,
          task.to.filter((id) => state.devices.get(id)?.health === 'ok'),
        )
        state.alloc.take(c.dest)
        taken.set(job.id, c.dest)
      }
      return state.generation
    })
  }
  const c = cp.chunk!
  await ctx.outbox.acked(fenceGen, { timeoutMs: ctx.agentTimeoutMs, what: `moving disk '${task.disk}' [${c.start}, ${c.end})` })
  const t0 = Date.now()
  await ctx.space.waitScrub(c.dest) // a discard still running there must not land on the copy
  await copy(ctx, c)
  const copyMs = Date.now() - t0
  const switchGen = await state.lock.run(async () => {
    const disk = liveDisk(ctx, task)
    const next = disk.table.plan(c.start, c.end, onto(c))
    job.done += c.end - c.start
    job.stats.copied += c.end - c.start
    job.stats.copyMs += copyMs
    cp.cursor = c.end
    cp.chunk = undefined
    const gen = await state.commitChange(disk, next, { preTaken: true, extra: save })
    taken.delete(job.id)
    held.get(job.id)?.()
    held.delete(job.id)
    ctx.outbox.update(disk, next, gen)
    return gen
  })
  await ctx.outbox.acked(switchGen, { timeoutMs: ctx.agentTimeoutMs, what: `switching disk '${task.disk}' [${c.start}, ${c.end})` })
  job.stats.stalls.push(Date.now() - c.fencedAt)
  ctx.space.kick()
  await sleep(copyMs * THROTTLE)
  return 'more'
}

/** The chunk's extents mapped onto its new pieces, each keeping its flags. */
function onto(c: Chunk): Extent[] {
  const out: Extent[] = []
  const dest = c.dest.map((p) => ({ ...p }))
  for (const e of c.orig) {
    let v = e.vstart
    let n = e.length
    while (n > 0) {
      const p = dest[0]!
      const k = Math.min(n, p.length)
      out.push({ vstart: v, length: k, device: p.device, pstart: p.pstart, flags: e.flags })
      v += k
      n -= k
      if (k === p.length) dest.shift()
      else dest[0] = { ...p, pstart: p.pstart + k, length: p.length - k }
    }
  }
  return out
}

/** Copy the chunk's old bytes to its new pieces, then fdatasync the destinations. */
async function copy(ctx: Ctx, c: Chunk): Promise<void> {
  const dev = async (id: number) => {
    const d = ctx.state.devices.get(id)
    if (!d) throw new VstorError('INTERNAL', `device #${id} left the pool during a move`)
    return ctx.io.get(d)
  }
  const buf = Buffer.allocUnsafe(CHUNK)
  const targets = new Set<number>()
  let pieces = c.dest.map((p) => ({ ...p }))
  for (const e of c.orig) {
    const src = await dev(e.device)
    for (let done = 0; done < e.length;) {
      const p = pieces[0]!
      const n = Math.min(e.length - done, p.length, buf.length)
      const b = buf.subarray(0, n)
      await src.readAt(b, e.pstart + done)
      await (await dev(p.device)).writeAt(b, p.pstart)
      targets.add(p.device)
      done += n
      pieces = n === p.length ? pieces.slice(1) : [{ ...p, pstart: p.pstart + n, length: p.length - n }, ...pieces.slice(1)]
    }
  }
  for (const id of targets) await (await dev(id)).syncP()
}

/** Undo a chunk in progress: old flags back, new space back to the pool, range no longer busy. */
export async function undoChunk(ctx: Ctx, job: JobRec, task: MoveTask, cp: MoveCheckpoint, save: () => Promise<void>): Promise<void> {
  const { state } = ctx
  const c = cp.chunk
  await state.lock.run(async () => {
    const t = taken.get(job.id)
    if (t)
      state.alloc.give(
        t.filter((p) => state.devices.has(p.device)),
        true,
      )
    taken.delete(job.id)
    cp.chunk = undefined
    const disk = state.disks.get(task.disk)
    if (c && disk && disk.uid === task.uid) {
      const change = disk.table.plan(c.start, c.end, c.orig)
      const gen = await state.commitChange(disk, change, { extra: save })
      if (!isEmpty(change)) ctx.outbox.update(disk, change, gen)
      log(`job ${job.id}: chunk [${c.start}, ${c.end}) of disk ${disk.name} undone (its old flags are back)`)
    } else await state.db.tx(save)
    held.get(job.id)?.()
    held.delete(job.id)
  })
}
