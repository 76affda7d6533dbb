// Moving a disk's data to other devices while it is in use (LVM's pvmove),
// one chunk of a few MiB at a time, through the no-write state:
//   take:     new space for the chunk, recorded dirty before anything is
//             written there (a crash leaves it to the scrubber, never as
//             clean space holding another disk's bytes);
//   pre-copy: old place → new place while writes go on (no stall), read
//             through this host's page cache (it need not be current); its
//             fdatasync runs on through the fence;
//   fence:    NoWrite on the chunk, committed with the checkpoint, pushed; wait
//             until every known agent applied it (so no write to the old place
//             is in flight or can start: writes there fault and wait);
//   copy:     the blocks that changed since the pre-copy (all of them after a
//             restart), the old place read as it is now (see sharesCache); fdatasync, and wait for the
//             pre-copy's;
//   switch:   map the chunk to the new place with its old flags, committed
//             with the checkpoint (the old place goes to quarantine), pushed;
//             held writes retry once their agent applied the switch.
//
// Invariants:
//   * reads go on from the old place throughout (NoWrite lets them through);
//   * a write is never lost or torn: none reaches the old place after the fence
//     is acked, none reaches the new place before the switch, and the copy
//     under the fence makes the new place equal to the old one;
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
import { trimDirty } from '../space'
import { isEmpty, type DiskRec } from '../state'
import { copyChunk, giveBuffer, onto, updateChunk, type PreCopy } from './copy'
import type { JobRec } from './runner'

export const CHUNK = 16 * MiB
/**
 * Pause after each chunk, as a fraction of the time it took, so foreground I/O keeps most of its
 * speed; only while some agent served requests since the last chunk (an idle pool moves at full speed).
 */
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
/** Requests each agent had served at the end of the job's last chunk, per job id. */
const servedAt = new Map<number, Map<string, number | null>>()

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

/**
 * Every known agent is connected over the Unix socket, so on this host: its writes go through the
 * page cache the controller reads (no device is opened O_DIRECT), and a cached read is current.
 * A TLS agent, or one not connected now, may be on another host: read the device afresh.
 */
function sharesCache(ctx: Ctx): boolean {
  return ctx.agents.known().every((a) => a.conn !== null && !a.conn.closed && a.conn.peerName === null)
}

/**
 * Some known agent served requests since the job's last chunk ended, or cannot tell (an agent
 * that does not report, or the job's first chunk): then the job rests after this chunk.
 */
export function foreground(ctx: Ctx, jobId: number): boolean {
  const before = servedAt.get(jobId)
  const now = new Map(ctx.agents.known().map((a) => [a.id, a.served]))
  servedAt.set(jobId, now)
  if (!before) return true
  for (const [id, n] of now) if (n === null || before.get(id) !== n) return true
  return false
}

/** Under the lock: new space for a chunk, taken from the pool, its clean parts recorded dirty (durably) before any copy. */
async function takeDest(ctx: Ctx, job: JobRec, task: MoveTask, bytes: number): Promise<Piece[]> {
  const { state } = ctx
  const dest = state.alloc.allocate(
    bytes,
    task.to.filter((id) => state.devices.get(id)?.health === 'ok'),
  )
  state.alloc.take(dest)
  try {
    await state.db.tx(async () => {
      for (const p of dest.filter((x) => !x.dirty))
        await state.db.run('INSERT INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [p.device, p.pstart, p.length])
    })
  } catch (e) {
    for (const dirty of [false, true])
      state.alloc.give(
        dest.filter((x) => x.dirty === dirty),
        dirty,
      )
    throw e
  }
  taken.set(job.id, dest)
  return dest
}

/** Under the lock: the taken space goes back to the pool (dirty: it may hold a copy). */
function giveBack(ctx: Ctx, job: JobRec): void {
  const t = taken.get(job.id)
  if (t)
    ctx.state.alloc.give(
      t.filter((p) => ctx.state.devices.has(p.device)),
      true,
    )
  taken.delete(job.id)
}

/** One chunk: take, pre-copy, fence, copy, switch. 'done' when nothing is left to move in the task. */
export async function moveStep(
  ctx: Ctx,
  job: JobRec,
  task: MoveTask,
  cp: MoveCheckpoint,
  save: () => Promise<void>,
): Promise<'more' | 'done'> {
  const { state } = ctx
  const stepStart = Date.now()
  let fenceGen: number
  let preMs = 0
  let copied: PreCopy | null = null
  if (!cp.chunk) {
    const plan = await state.lock.run(async () => {
      const disk = liveDisk(ctx, task)
      // a fresh job's checkpoint is {}: it starts at the task's start
      const e = disk.table.slice(Math.max(cp.cursor ?? task.start, task.start), task.end).find((x) => needsMove(x, task))
      if (!e) return null
      const start = e.vstart
      const end = Math.min(e.vstart + e.length, start + CHUNK)
      return { start, end, orig: disk.table.slice(start, end), dest: await takeDest(ctx, job, task, end - start) }
    })
    if (!plan) {
      servedAt.delete(job.id)
      return 'done'
    }
    const t0 = Date.now()
    await ctx.space.waitScrub(plan.dest) // a discard still running there must not land on the copy
    copied = await copyChunk(ctx, plan.orig, plan.dest)
    preMs = Date.now() - t0
    const r = await state.lock.run(async () => {
      const disk = liveDisk(ctx, task)
      const busy = busyAt(ctx, disk.uid, plan.start, plan.end)
      const orig = disk.table.slice(plan.start, plan.end)
      if (busy || JSON.stringify(orig) !== JSON.stringify(plan.orig)) {
        giveBack(ctx, job) // the range is being changed, or was: plan again
        return { wait: busy?.done }
      }
      held.set(job.id, markBusy(ctx, disk.uid, plan.start, plan.end))
      const change = disk.table.plan(
        plan.start,
        plan.end,
        orig.map((x) => ({ ...x, flags: x.flags | Flag.NoWrite })),
      )
      cp.cursor = plan.start
      cp.chunk = { ...plan, fencedAt: Date.now() }
      const gen = await state.commitChange(disk, change, { extra: save })
      cp.chunk.fencedAt = Date.now() // writes are held from the push on, not during the commit
      if (!isEmpty(change)) ctx.outbox.update(disk, change, gen)
      return gen
    })
    if (typeof r !== 'number') {
      await copied.durable.catch(() => {}) // nothing of it is used: only let it end
      giveBuffer(copied.data)
      await r.wait
      return 'more'
    }
    fenceGen = r
  } else {
    // resumed: the fence is in the table every agent reloads; new space is taken afresh
    fenceGen = await state.lock.run(async () => {
      liveDisk(ctx, task)
      const c = cp.chunk!
      if (!taken.has(job.id)) c.dest = await takeDest(ctx, job, task, c.end - c.start)
      return state.generation
    })
  }
  const c = cp.chunk!
  await ctx.jobs.interruptible(
    job,
    ctx.outbox.acked(fenceGen, { timeoutMs: ctx.agentTimeoutMs, what: `moving disk '${task.disk}' [${c.start}, ${c.end})` }),
  )
  const t1 = Date.now()
  await ctx.space.waitScrub(c.dest)
  // the pre-copy's fdatasync ran on meanwhile: the switch waits for it as for the update's own (and
  // for both to end, so no write of the update is left running when one of them failed)
  const fresh = !sharesCache(ctx)
  const ends = await Promise.allSettled([copied?.durable, updateChunk(ctx, c.orig, c.dest, copied?.data ?? null, fresh)])
  for (const e of ends) if (e.status === 'rejected') throw e.reason
  if (copied) giveBuffer(copied.data)
  const copyMs = preMs + Date.now() - t1
  const switchGen = await state.lock.run(async () => {
    const disk = liveDisk(ctx, task)
    const next = disk.table.plan(c.start, c.end, onto(c.orig, c.dest))
    job.done += c.end - c.start
    job.stats.copied += c.end - c.start
    job.stats.copyMs += copyMs
    cp.cursor = c.end
    cp.chunk = undefined
    const gen = await state.commitChange(disk, next, {
      preTaken: true,
      extra: async () => {
        await save()
        for (const p of c.dest) await trimDirty(state, p.device, p.pstart, p.pstart + p.length)
      },
    })
    taken.delete(job.id)
    held.get(job.id)?.()
    held.delete(job.id)
    ctx.outbox.update(disk, next, gen)
    return gen
  })
  await ctx.jobs.interruptible(
    job,
    ctx.outbox.acked(switchGen, { timeoutMs: ctx.agentTimeoutMs, what: `switching disk '${task.disk}' [${c.start}, ${c.end})` }),
  )
  job.stats.stalls.push(Date.now() - c.fencedAt)
  ctx.space.kick()
  if (foreground(ctx, job.id)) await sleep((Date.now() - stepStart) * THROTTLE)
  return 'more'
}

/** Undo a chunk in progress: old flags back, new space back to the pool, range no longer busy. */
export async function undoChunk(ctx: Ctx, job: JobRec, task: MoveTask, cp: MoveCheckpoint, save: () => Promise<void>): Promise<void> {
  const { state } = ctx
  const c = cp.chunk
  servedAt.delete(job.id)
  await state.lock.run(async () => {
    giveBack(ctx, job)
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
