// What every handler gets: the model, the agents, what goes out to them, the
// space manager, device handles, jobs and the options.

import { VstorError } from '../errors'
import type { Hurry } from '../hurry'
import type { Agents } from './agents'
import type { DeviceIo } from './devio'
import type { Jobs } from './jobs/runner'
import type { Outbox } from './outbox'
import type { Space } from './space'
import type { State } from './state'

export interface Ctx {
  state: State
  agents: Agents
  outbox: Outbox
  space: Space
  io: DeviceIo
  jobs: Jobs
  socket: string
  dataDir: string
  database: string
  startedAt: Date
  noSpaceTimeoutMs: number
  refreshIntervalMs: number
  /** How long a change that every agent must apply first waits for their acks. */
  agentTimeoutMs: number
  /** Range edits in flight per disk uid (allocations, moves): later faults on them wait, see faults.ts. */
  busy: Map<string, Busy[]>
  /** The main thread runs real-time while a move's fence holds writes (by disk uid; src/hurry.ts). */
  hurry: Hurry
  stop: () => void
}

/** A range of a disk being allocated or moved: faults there wait for `done`. */
export interface Busy {
  start: number
  end: number
  done: Promise<void>
}

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new VstorError(
      'BAD_NAME',
      `bad ${what} name '${String(name)}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return name
}

/** Mark [start, end) of a disk busy until the returned finish() is called. */
export function markBusy(ctx: Ctx, uid: string, start: number, end: number): () => void {
  let finish!: () => void
  const b: Busy = { start, end, done: new Promise<void>((r) => (finish = r)) }
  const list = ctx.busy.get(uid) ?? []
  list.push(b)
  ctx.busy.set(uid, list)
  return () => {
    const l = (ctx.busy.get(uid) ?? []).filter((x) => x !== b)
    if (l.length) ctx.busy.set(uid, l)
    else ctx.busy.delete(uid)
    finish()
  }
}

/** The first busy range overlapping [start, end) of a disk, if any. */
export function busyAt(ctx: Ctx, uid: string, start: number, end: number): Busy | undefined {
  return ctx.busy.get(uid)?.find((b) => b.start < end && start < b.end)
}
