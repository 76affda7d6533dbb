// What the agents' acks of table changes tell a job (each ack carries the agent's counts of requests
// served and writes finished, all disks, and when it blocked and changed the range): whether
// foreground I/O runs (a move then rests), whether any write finished since a moment (a move's
// pre-copy then needs no reread), and how long a chunk's writes were held.
//
// Invariant: a write count is compared only with one from the same connection of the same agent; an
// agent that does not report counts (null) always counts as busy and as having written.

import type { Ctx } from '../context'

/** Requests each agent had served at the end of the job's last chunk, per job id. */
const servedAt = new Map<number, Map<string, number | null>>()

/**
 * Every known agent is connected over the Unix socket, so on this host: its writes go through the
 * page cache the controller reads (no device is opened O_DIRECT), and a cached read is current.
 * A TLS agent, or one not connected now, may be on another host: read the device afresh.
 */
export function sharesCache(ctx: Ctx): boolean {
  return ctx.agents.known().every((a) => a.conn !== null && !a.conn.closed && a.conn.peerName === null)
}

/** What each known agent had written by its last ack, and over which connection (a restarted agent counts afresh). */
export type Writes = Map<string, { conn: unknown; written: number | null }>

export function writesNow(ctx: Ctx): Writes {
  return new Map(ctx.agents.known().map((a) => [a.id, { conn: a.conn, written: a.written }]))
}

/**
 * No agent finished a write between `before` (taken before the pre-copy read) and the fence's acks:
 * every known agent is on this host (its writes reach the page cache the pre-copy reads) and reported
 * equal counts over the same connection. A write into the chunk was either done before `before` (the
 * pre-copy read it) or held by the fence: the pre-copy is the chunk as it is, with nothing to reread.
 */
export function unwritten(ctx: Ctx, before: Writes): boolean {
  if (!sharesCache(ctx)) return false
  for (const [id, w] of writesNow(ctx)) {
    const b = before.get(id)
    if (!b || b.conn !== w.conn || w.written === null || b.written !== w.written) return false
  }
  return true
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

/**
 * How long writes to a chunk were held: from when an agent blocked the range for the fence
 * (generation `fence`) to when it applied the switch (`switched`), each on its own clock (from its
 * acks), the longest over the known agents. null when any known agent did not report both (it was
 * reloaded instead, or is older): the caller then counts from the fence's push to the last ack.
 */
export function heldMs(ctx: Ctx, fence: number, switched: number): number | null {
  let worst: number | null = null
  for (const a of ctx.agents.known()) {
    const f = a.applied.get(fence)
    const s = a.applied.get(switched)
    if (!f || !s) return null
    worst = Math.max(worst ?? 0, s.appliedAt - f.blockedAt)
  }
  return worst
}

/** The job ended or was undone: its next chunk is a first one again. */
export function forgetServed(jobId: number): void {
  servedAt.delete(jobId)
}
