// The job kinds and the commands that start them: disk move, device evacuate.
//
// Invariants: a move job's checkpoint is a MoveCheckpoint of its one disk; an
// evacuate job's checkpoint names the disk it is moving now (none between
// disks); the evacuated device is 'evacuating' while the job runs (no new
// space comes from it), 'evacuated' when it is empty, 'active' again if the
// job failed or was cancelled.

import { VstorError } from '../../errors'
import type { JobInfo } from '../../protocol/messages'
import { checkRange } from '../disks'
import type { Ctx } from '../context'
import { log } from '../log'
import type { DeviceState } from '../state'
import { bytesToMove, holdAgain, moveStep, undoChunk, type MoveCheckpoint, type MoveTask } from './move'
import type { Jobs, JobRec } from './runner'

type EvacCheckpoint = MoveCheckpoint & { disk?: string; uid?: string }

function targets(ctx: Ctx, names: string[] | undefined, except?: string): number[] {
  const ids = ctx.state.allocatable(names && names.length ? names : undefined).filter((id) => ctx.state.devices.get(id)?.name !== except)
  if (ids.length === 0)
    throw new VstorError('NO_SPACE', 'no device to move to: add one with `vstor device add`, or name healthy ones with --to')
  return ids
}

function moveTask(job: JobRec): MoveTask {
  return job.params as unknown as MoveTask
}

function evacTask(ctx: Ctx, job: JobRec, cp: EvacCheckpoint): MoveTask | null {
  if (!cp.disk || !cp.uid) return null
  const p = job.params as { from: number; to: number[] }
  const disk = ctx.state.disks.get(cp.disk)
  return { disk: cp.disk, uid: cp.uid, start: 0, end: disk?.size ?? 0, to: p.to, from: p.from }
}

export function registerKinds(jobs: Jobs): void {
  const saver = (ctx: Ctx, job: JobRec) => () => ctx.jobs.save(job)
  jobs.register('move', {
    step: (ctx, job) => moveStep(ctx, job, moveTask(job), job.checkpoint as unknown as MoveCheckpoint, saver(ctx, job)),
    undo: (ctx, job) => undoChunk(ctx, job, moveTask(job), job.checkpoint as unknown as MoveCheckpoint, saver(ctx, job)),
    resume: (ctx, job) => holdAgain(ctx, job, moveTask(job), job.checkpoint as unknown as MoveCheckpoint),
  })
  jobs.register('evacuate', {
    async step(ctx, job) {
      const cp = job.checkpoint as unknown as EvacCheckpoint
      const p = job.params as { from: number }
      if (!cp.disk) {
        const next = await ctx.state.lock.run(async () => {
          for (const d of ctx.state.disks.values()) if (d.table.all().some((e) => e.device === p.from)) return d
          return null
        })
        if (!next) return 'done'
        Object.assign(cp, { disk: next.name, uid: next.uid, cursor: 0, chunk: undefined })
        return 'more'
      }
      const task = evacTask(ctx, job, cp)!
      const r = await moveStep(ctx, job, task, cp, saver(ctx, job)).catch(async (e: VstorError) => {
        if (e.code !== 'NOT_FOUND') throw e
        // the disk was deleted meanwhile: nothing of it left to move; give back the space taken for it
        await undoChunk(ctx, job, task, cp, saver(ctx, job))
        return 'done' as const
      })
      if (r === 'done') {
        delete cp.disk
        delete cp.uid
      }
      return 'more'
    },
    async undo(ctx, job) {
      const cp = job.checkpoint as unknown as EvacCheckpoint
      const t = evacTask(ctx, job, cp)
      if (t) await undoChunk(ctx, job, t, cp, saver(ctx, job))
    },
    resume(ctx, job) {
      const cp = job.checkpoint as unknown as EvacCheckpoint
      const t = evacTask(ctx, job, cp)
      if (t) holdAgain(ctx, job, t, cp)
    },
    async end(ctx, job) {
      const d = ctx.state.devices.get((job.params as { from: number }).from)
      if (!d) return
      const state: DeviceState = job.state === 'done' ? 'evacuated' : 'active'
      await ctx.state.db.run('UPDATE devices SET state = ? WHERE id = ?', [state, d.id])
      d.state = state
    },
  })
}

/** `disk move NAME --to DEVICE [--offset --length]`: start a move job. */
export async function diskMove(ctx: Ctx, params: { name: string; to: string; offset?: number; length?: number }): Promise<JobInfo> {
  const { state } = ctx
  const job = await state.lock.run(async () => {
    const disk = state.disk(params.name)
    const running = ctx.jobs.busyDisk(disk.name)
    if (running)
      throw new VstorError(
        'DISK_OPEN',
        `job ${running.id} is already moving disk '${disk.name}'; wait for it (\`vstor job wait ${running.id}\`) or cancel it`,
      )
    const start = params.offset ?? 0
    const length = params.length ?? disk.size - start
    checkRange(disk, start, length)
    const task: MoveTask = { disk: disk.name, uid: disk.uid, start, end: start + length, to: targets(ctx, [params.to]) }
    return ctx.jobs.create('move', { disk: disk.name, params: { ...task, toNames: [params.to] }, total: bytesToMove(disk, task) })
  })
  log(`job ${job.id}: move disk ${params.name} to ${params.to} started (${job.total} bytes)`)
  return ctx.jobs.info(job)
}

/** `device evacuate NAME [--to DEVICE]...`: mark the device evacuating and start a job moving everything off it. */
export async function deviceEvacuate(ctx: Ctx, params: { name: string; to?: string[] }): Promise<JobInfo> {
  const { state } = ctx
  const job = await state.lock.run(async () => {
    const d = state.deviceByName(params.name)
    if (ctx.jobs.active().some((j) => j.kind === 'evacuate' && j.device === d.name))
      throw new VstorError('DEVICE_BUSY', `device '${d.name}' is being evacuated already; see \`vstor job list\``)
    if (params.to?.includes(d.name)) throw new VstorError('BAD_ARGUMENT', `cannot evacuate device '${d.name}' onto itself`)
    const to = targets(ctx, params.to, d.name)
    let total = 0
    for (const disk of state.disks.values()) for (const e of disk.table.all()) if (e.device === d.id && !(e.flags & 9)) total += e.length // not Error (8) / Invalid (1)
    const j = await ctx.jobs.create('evacuate', { device: d.name, params: { from: d.id, to, toNames: params.to ?? [] }, total }, () =>
      state.db.run("UPDATE devices SET state = 'evacuating' WHERE id = ?", [d.id]).then(() => undefined),
    )
    d.state = 'evacuating'
    return j
  })
  log(`job ${job.id}: evacuate device ${params.name} started (${job.total} bytes)`)
  return ctx.jobs.info(job)
}
