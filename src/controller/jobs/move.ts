// Moving a disk's data to other devices while it is in use (LVM's pvmove),
// one chunk of 4-64 MiB at a time, through the no-write state:
//   take:     new space for the chunk, recorded dirty (durably: a barrier runs
//             before the copy) before anything is written there (a crash leaves
//             it to the scrubber, never as clean space holding another disk's
//             bytes); taken in the previous chunk's switch transaction if any;
//   pre-copy: old place → new place while writes go on (no stall), read
//             through this host's page cache (it need not be current), written
//             behind (writeback starts per segment) and fdatasync'd before the
//             fence, so the stall never waits for it;
//   fence:    NoWrite on the chunk, committed lazily with the checkpoint (lost
//             in a power failure, the chunk is only copied again), pushed as a
//             hold (agents and controller run real-time until the switch is
//             out: src/hurry.ts); wait
//             until every known agent applied it (so no write to the old place
//             is in flight or can start: writes there fault and wait);
//   copy:     the blocks that changed since the pre-copy (all of them after a
//             restart), the old place read as it is now (see sharesCache); fdatasync;
//             nothing to do when no agent finished a write since before the
//             pre-copy read (their acks carry counts; see acks.ts);
//   switch:   map the chunk to the new place with its old flags, committed
//             lazily with the checkpoint and the next chunk's take (the old
//             place goes to quarantine), pushed as lazy: as after a thin
//             allocation, an agent's next fsync waits for a barrier, and the
//             old place is released only once the switch is durable (space.ts);
//             held writes retry once their agent applied the switch.
// No fsync of the database, and no WAL checkpoint (Db.checkpoint runs between chunks), falls inside the stall: writes to the chunk are held from when an agent
// blocks it for the fence to when it applies the switch (each agent's acks say when; see acks.ts).
//
// Chunks are CHUNK long, doubling up to CHUNK_MAX while no agent serves
// requests (fewer commits and round trips per byte), back to CHUNK as soon as
// one does (shorter stalls and rests); a job's first is short; see chunks.ts.
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

import { VstorError } from '../../errors'
import { Flag } from '../../table/table'
import { busyAt, markBusy, type Ctx } from '../context'
import { log } from '../log'
import { trimDirty } from '../space'
import { isEmpty } from '../state'
import {
  forgetChunks,
  giveBack,
  liveDisk,
  nextLength,
  planChunk,
  planned,
  recordDirty,
  recordTaken,
  takeDest,
  taken,
  type MoveTask,
  type Plan,
} from './chunks'
import { foreground, forgetServed, heldMs, sharesCache, unwritten, writesNow, type Writes } from './acks'
import { copyChunk, giveBuffer, onto, updateChunk, type PreCopy } from './copy'
import type { JobRec } from './runner'

export { bytesToMove, CHUNK, FIRST_CHUNK, needsMove, type MoveTask } from './chunks'

/**
 * Pause after each chunk, as a fraction of the time it took, so foreground I/O keeps most of its
 * speed; only while some agent served requests since the last chunk (an idle pool moves at full speed).
 * At 0.5 foreground 4k reads at QD16 kept 0.49-0.81x (its rate before the move varies 60-117k IOPS
 * on this host, and the lowest ratios came with the fastest); at 0.75, 0.62-0.75x.
 */
const THROTTLE = 0.75

interface Chunk extends Plan {
  fencedAt: number
}
export interface MoveCheckpoint {
  cursor?: number
  chunk?: Chunk
}

/** Busy releases of fenced chunks, per job id (memory only: re-made on resume). */
const held = new Map<number, () => void>()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Resume hook: a chunk fenced before the restart is busy again before anyone can fault on it. */
export function holdAgain(ctx: Ctx, job: JobRec, task: MoveTask, cp: MoveCheckpoint): void {
  if (cp.chunk && !held.has(job.id)) held.set(job.id, markBusy(ctx, task.uid, cp.chunk.start, cp.chunk.end))
}

/** The job's state in this process is gone (its end, its undo). */
function forget(job: JobRec): void {
  forgetServed(job.id)
  forgetChunks(job)
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
  let before: Writes | null = null // agents' write counts before the pre-copy read, when a fence is pushed after it
  if (!cp.chunk) {
    const plan =
      planned.get(job.id) ??
      (await state.lock.run(async () => {
        const p = planChunk(ctx, job, task, cp.cursor ?? task.start) // a fresh job's checkpoint is {}
        if (p) await recordTaken(ctx, job, p.dest)
        return p
      }))
    planned.delete(job.id)
    if (!plan) {
      forget(job)
      return 'done'
    }
    // the new space's dirty rows (and the last switch) reach the disk before any copy does; the
    // old space of the last switch can be released now
    await state.barrier()
    ctx.space.kick()
    const t0 = Date.now()
    await ctx.space.waitScrub(plan.dest) // a discard still running there must not land on the copy
    const counts = writesNow(ctx)
    copied = await copyChunk(ctx, plan.orig, plan.dest)
    try {
      await copied.durable // before the fence: the stall never waits for the pre-copy to reach the device
    } catch (e) {
      giveBuffer(copied.data)
      throw e
    }
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
      const gen = await state.commitChange(disk, change, { extra: save, durable: false })
      cp.chunk.fencedAt = Date.now() // writes are held from the push on, not during the commit
      if (!isEmpty(change)) {
        ctx.outbox.update(disk, change, gen, { hold: true }) // they hurry until the switch (src/hurry.ts), as we do
        ctx.hurry.hold(disk.uid, plan.start, plan.end)
        before = counts // its acks tell whether a write finished since
      }
      return gen
    })
    if (typeof r !== 'number') {
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
  try {
    if (!before || !unwritten(ctx, before)) await updateChunk(ctx, c.orig, c.dest, copied?.data ?? null, !sharesCache(ctx))
  } finally {
    if (copied) giveBuffer(copied.data)
  }
  const copyMs = preMs + Date.now() - t1
  const busy = foreground(ctx, job.id) // served counts as of the fence's acks
  nextLength(job, busy)
  const switchGen = await state.lock.run(async () => {
    const disk = liveDisk(ctx, task)
    const next = disk.table.plan(c.start, c.end, onto(c.orig, c.dest))
    job.done += c.end - c.start
    job.stats.copied += c.end - c.start
    job.stats.copyMs += copyMs
    cp.cursor = c.end
    cp.chunk = undefined
    // the next chunk's space, taken in this transaction; none when the pool is short (the next step tries again)
    let then: Plan | null = null
    try {
      then = planChunk(ctx, job, task, c.end)
    } catch (e) {
      if (!(e instanceof VstorError) || e.code !== 'NO_SPACE') throw e
    }
    const gen = await state
      .commitChange(disk, next, {
        preTaken: true,
        durable: false,
        extra: async () => {
          await save()
          for (const p of c.dest) await trimDirty(state, p.device, p.pstart, p.pstart + p.length)
          if (then) await recordDirty(ctx, then.dest)
        },
      })
      .catch((e: unknown) => {
        // not switched after all: the undo restores the old flags and gives the new space (c.dest and then.dest, both taken) back
        cp.cursor = c.start
        cp.chunk = c
        job.done -= c.end - c.start
        job.stats.copied -= c.end - c.start
        job.stats.copyMs -= copyMs
        throw e
      })
    taken.set(job.id, then?.dest ?? []) // c.dest is mapped now (preTaken)
    if (then) planned.set(job.id, then)
    held.get(job.id)?.()
    held.delete(job.id)
    ctx.outbox.update(disk, next, gen, { lazy: true }) // an agent's next fsync asks for a barrier first
    ctx.hurry.release(disk.uid, c.start, c.end)
    return gen
  })
  await ctx.jobs.interruptible(
    job,
    ctx.outbox.acked(switchGen, { timeoutMs: ctx.agentTimeoutMs, what: `switching disk '${task.disk}' [${c.start}, ${c.end})` }),
  )
  // writes were held from the fence's block to the switch, as the agents measured it; else from the push
  const stall = (before ? heldMs(ctx, fenceGen, switchGen) : null) ?? Date.now() - c.fencedAt
  job.stats.stalls.push(Math.round(stall * 10) / 10)
  ctx.space.kick()
  await state.db.checkpoint() // here, not inside the next switch's COMMIT (see Db.checkpoint)
  if (busy) await sleep((Date.now() - stepStart) * THROTTLE)
  return 'more'
}

/** Undo a chunk in progress: old flags back, new space back to the pool, range no longer busy. */
export async function undoChunk(ctx: Ctx, job: JobRec, task: MoveTask, cp: MoveCheckpoint, save: () => Promise<void>): Promise<void> {
  const { state } = ctx
  const c = cp.chunk
  forget(job)
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
    if (c) ctx.hurry.release(task.uid, c.start, c.end)
    held.get(job.id)?.()
    held.delete(job.id)
  })
}
