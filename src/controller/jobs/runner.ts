// Long-running jobs (move, evacuate): a row each in SQLite, run in the
// background, checkpointed after every step, resumed after a restart.
//
// Invariants:
//   * a job's row is written before it starts and after every step (in the
//     same transaction as the table change the step makes), so a kill -9
//     leaves a checkpoint the job resumes from, never a half-known state;
//   * at most one running job per disk (and per evacuated device);
//   * stop() lets the current step finish and leaves running jobs 'running'
//     for the next start; cancel() ends a job at its next step boundary, or at
//     once when the step waits for agents (interruptible), and undoes the step
//     in progress;
//   * wait() resolves with the final JobInfo; progress goes to its listener.

import { VstorError } from '../../errors'
import type { JobInfo, JobState } from '../../protocol/messages'
import type { Ctx } from '../context'
import { log } from '../log'

export type JobKind = JobInfo['kind']

export interface JobRec {
  id: number
  kind: JobKind
  disk: string | null
  device: string | null
  params: Record<string, unknown>
  state: JobState
  done: number
  total: number
  checkpoint: Record<string, unknown>
  error: string | null
  stats: { stalls: number[]; copied: number; copyMs: number }
  createdAt: string
  updatedAt: string
  cancel: boolean
}

/** One step of a job: 'more' after a checkpointed step, 'done' when finished. Throws to fail the job. */
export type Step = (ctx: Ctx, job: JobRec) => Promise<'more' | 'done'>
/** Undo whatever a step left half done (a cancel or failure). */
export type Undo = (ctx: Ctx, job: JobRec) => Promise<void>
/** What a kind does with its jobs: steps, undo, a synchronous hook run before a resumed job's first step, and one at its end (inside the final transaction). */
export interface Kind {
  step: Step
  undo: Undo
  resume?: (ctx: Ctx, job: JobRec) => void
  end?: (ctx: Ctx, job: JobRec) => Promise<void>
}

type Listener = (j: JobRec) => void

const pct = (xs: number[], p: number): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 100) / 100
}

export class Jobs {
  readonly byId = new Map<number, JobRec>()
  private readonly kinds = new Map<JobKind, Kind>()
  private readonly running = new Map<number, Promise<void>>()
  private readonly listeners = new Map<number, Set<Listener>>()
  /** Interrupts a cancelled job's wait in progress, per job id. */
  private readonly onCancel = new Map<number, () => void>()
  private stopping = false

  constructor(private readonly ctx: () => Ctx) {}

  register(kind: JobKind, k: Kind): void {
    this.kinds.set(kind, k)
  }

  async load(): Promise<void> {
    const db = this.ctx().state.db
    for (const r of await db.all<Record<string, string | number | null>>('SELECT * FROM jobs ORDER BY id')) {
      const stats = JSON.parse(String(r.stats)) as Partial<JobRec['stats']>
      this.byId.set(Number(r.id), {
        id: Number(r.id),
        kind: String(r.kind) as JobKind,
        disk: r.disk === null ? null : String(r.disk),
        device: r.device === null ? null : String(r.device),
        params: JSON.parse(String(r.params)) as Record<string, unknown>,
        state: String(r.state) as JobState,
        done: Number(r.done),
        total: Number(r.total),
        checkpoint: JSON.parse(String(r.checkpoint)) as Record<string, unknown>,
        error: r.error === null ? null : String(r.error),
        stats: { stalls: stats.stalls ?? [], copied: stats.copied ?? 0, copyMs: stats.copyMs ?? 0 },
        createdAt: String(r.created_at),
        updatedAt: String(r.updated_at),
        cancel: false,
      })
    }
  }

  /** Start every job a previous run left running (call before serving: resume hooks hold their ranges first). */
  resume(): void {
    for (const j of this.byId.values()) {
      if (j.state !== 'running') continue
      log(`job ${j.id} (${j.kind} ${j.disk ?? j.device ?? ''}) resumes from its checkpoint at ${j.done} of ${j.total} bytes`)
      this.kinds.get(j.kind)?.resume?.(this.ctx(), j)
      this.spawn(j)
    }
  }

  /** Insert and start a job (call under the state lock: `extra` runs in the same transaction). */
  async create(
    kind: JobKind,
    fields: { disk?: string; device?: string; params: Record<string, unknown>; total: number },
    extra?: () => Promise<void>,
  ): Promise<JobRec> {
    const db = this.ctx().state.db
    const now = new Date().toISOString()
    const j: JobRec = {
      id: 0,
      kind,
      disk: fields.disk ?? null,
      device: fields.device ?? null,
      params: fields.params,
      state: 'running',
      done: 0,
      total: fields.total,
      checkpoint: {},
      error: null,
      stats: { stalls: [], copied: 0, copyMs: 0 },
      createdAt: now,
      updatedAt: now,
      cancel: false,
    }
    await db.tx(async () => {
      j.id = (
        await db.run(
          'INSERT INTO jobs (kind, disk, device, params, state, done, total, checkpoint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)',
          [kind, j.disk, j.device, JSON.stringify(j.params), 'running', j.total, '{}', now, now],
        )
      ).lastID
      if (extra) await extra()
    })
    this.byId.set(j.id, j)
    setImmediate(() => this.spawn(j))
    return j
  }

  /** Statements persisting a job's progress; run them inside the step's transaction. */
  async save(j: JobRec): Promise<void> {
    j.updatedAt = new Date().toISOString()
    const stats = { stalls: j.stats.stalls.slice(-1000), copied: j.stats.copied, copyMs: j.stats.copyMs }
    await this.ctx().state.db.queue(
      'UPDATE jobs SET state = ?, done = ?, total = ?, checkpoint = ?, error = ?, stats = ?, updated_at = ? WHERE id = ?',
      [j.state, j.done, j.total, JSON.stringify(j.checkpoint), j.error, JSON.stringify(stats), j.updatedAt, j.id],
    )
    for (const l of this.listeners.get(j.id) ?? []) l(j)
  }

  active(): JobRec[] {
    return [...this.byId.values()].filter((j) => j.state === 'running')
  }

  usesDevice(name: string): boolean {
    return this.active().some((j) => j.device === name || (j.params.to as string[] | undefined)?.includes(name))
  }

  busyDisk(name: string): JobRec | undefined {
    return this.active().find((j) => j.disk === name)
  }

  get(id: number): JobRec {
    const j = this.byId.get(id)
    if (!j) throw new VstorError('JOB_NOT_FOUND', `no job ${id}; see \`vstor job list\``)
    return j
  }

  info(j: JobRec): JobInfo {
    const s = j.stats
    return {
      id: j.id,
      kind: j.kind,
      disk: j.disk,
      device: j.device,
      state: j.state,
      done: j.done,
      total: j.total,
      error: j.error,
      createdAt: j.createdAt,
      updatedAt: j.updatedAt,
      stats: {
        chunks: s.stalls.length,
        stallP50Ms: pct(s.stalls, 50),
        stallP99Ms: pct(s.stalls, 99),
        copyMBps: s.copyMs > 0 ? Math.round((s.copied / 2 ** 20 / (s.copyMs / 1000)) * 10) / 10 : null,
      },
    }
  }

  /** Resolve with the job once it ended; progress(j) on every checkpoint meanwhile. */
  wait(id: number, progress: Listener = () => {}): Promise<JobRec> {
    const j = this.get(id)
    if (j.state !== 'running') return Promise.resolve(j)
    return new Promise((resolve) => {
      const set = this.listeners.get(id) ?? new Set<Listener>()
      this.listeners.set(id, set)
      const l: Listener = (x) => {
        progress(x)
        if (x.state !== 'running') {
          set.delete(l)
          resolve(x)
        }
      }
      set.add(l)
    })
  }

  cancel(id: number): JobRec {
    const j = this.get(id)
    if (j.state === 'running') {
      j.cancel = true
      this.onCancel.get(id)?.()
    }
    return j
  }

  /** p, unless the job is cancelled first: then reject at once (p's outcome is ignored) so the step ends and is undone. */
  interruptible<T>(j: JobRec, p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const off = (): void => void this.onCancel.delete(j.id)
      const cancelled = (): void => {
        off()
        reject(new VstorError('JOB_FAILED', `job ${j.id} was cancelled`))
      }
      if (j.cancel) return cancelled()
      this.onCancel.set(j.id, cancelled)
      p.then(
        (v) => {
          off()
          resolve(v)
        },
        (e: unknown) => {
          off()
          reject(e instanceof Error ? e : new Error(String(e)))
        },
      )
    })
  }

  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.running.values())
  }

  private spawn(j: JobRec): void {
    if (this.running.has(j.id) || this.stopping) return
    const p = this.run(j).finally(() => this.running.delete(j.id))
    this.running.set(j.id, p)
  }

  private async run(j: JobRec): Promise<void> {
    const kind = this.kinds.get(j.kind)
    const ctx = this.ctx()
    if (!kind) return this.finish(j, 'failed', `unknown job kind '${j.kind}'`)
    try {
      while (!this.stopping) {
        if (j.cancel) {
          await kind.undo(ctx, j)
          return this.finish(j, 'cancelled', null)
        }
        if ((await kind.step(ctx, j)) === 'done') return this.finish(j, 'done', null)
      }
    } catch (e) {
      await kind.undo(ctx, j).catch((u: Error) => log(`job ${j.id}: undoing its step failed: ${u.message}`))
      // a cancel interrupts a step waiting for agents (see interruptible): that is a cancel, not a failure
      return j.cancel ? this.finish(j, 'cancelled', null) : this.finish(j, 'failed', (e as Error).message)
    }
  }

  private async finish(j: JobRec, state: JobState, error: string | null): Promise<void> {
    j.state = state
    j.error = error
    j.checkpoint = {}
    const ctx = this.ctx()
    const end = this.kinds.get(j.kind)?.end
    await ctx.state.lock.run(() =>
      ctx.state.db.tx(async () => {
        if (end) await end(ctx, j)
        await this.save(j)
      }),
    )
    log(`job ${j.id} (${j.kind} ${j.disk ?? j.device ?? ''}) ${state}${error ? `: ${error}` : ''}`)
    ctx.space.kick()
  }
}
