// What the controller sends to agents, and waiting for their acks.
//
// Invariants:
//   * pushes are written to each agent's connection at once, in commit order:
//     callers enqueue under the state lock right after apply, the socket keeps
//     the order and the agent applies in arrival order; nothing here awaits an
//     agent, so the lock is never held across a round trip;
//   * updates go only to agents in sync (they have, or are being sent in
//     order, every change so far); an agent out of sync gets one full
//     table.load, encoded and written synchronously, and is in sync from there;
//   * a push an agent fails to apply puts it out of sync and reloads it;
//   * acked(gen) resolves when every agent asked for has acked >= gen, and
//     otherwise rejects after its timeout with AGENT_UNRESPONSIVE naming them;
//     waiters are checked on every ack, risen or not (an agent that reconnects
//     comes back as a new record already at its generation, and then acks a
//     load at that same generation).

import { VstorError } from '../errors'
import type { AgentDevice, ControllerToAgentMethods, LoadDisk, PushAck } from '../protocol/messages'
import { Table, type Change } from '../table/table'
import type { AgentRec, Agents } from './agents'
import { log } from './log'
import type { DiskRec, State } from './state'

type PushMethod = keyof ControllerToAgentMethods

interface Waiter {
  gen: number
  ids: Set<string>
  resolve: () => void
  reject: (e: VstorError) => void
  timer: NodeJS.Timeout
  what: string
}

/** Acks of table.update whose times each agent keeps (a job reads those of its last two pushes). */
const APPLIED_KEPT = 64

/** The counts and times an agent's ack carries (see PushAck), kept for the jobs (jobs/acks.ts). */
function counts(a: AgentRec, r: PushAck): void {
  if (typeof r.served === 'number') a.served = r.served
  if (typeof r.written === 'number') a.written = r.written
  if (typeof r.blockedAt === 'number' && typeof r.appliedAt === 'number') {
    a.applied.set(r.generation, { blockedAt: r.blockedAt, appliedAt: r.appliedAt })
    if (a.applied.size > APPLIED_KEPT) a.applied.delete(a.applied.keys().next().value!)
  }
}

/** What an agent needs to know about a disk beyond its table. */
function diskTraits(d: DiskRec): { readonly?: true; sparse?: true } {
  return { ...(d.readonly ? { readonly: true } : {}), ...(d.thin || d.origin !== null ? { sparse: true } : {}) }
}

export class Outbox {
  private waiters = new Set<Waiter>()

  constructor(
    private readonly state: State,
    private readonly agents: Agents,
    /** Generation up to which every commit is durable (loads tell agents; fsync needs no barrier below it). */
    private readonly durable: () => number,
  ) {
    const prev = agents.onChange
    agents.onChange = () => {
      prev()
      this.check()
    }
  }

  devices(): AgentDevice[] {
    return [...this.state.devices.values()].map((d) => ({ id: d.id, name: d.name, uuid: d.uuid, hint: d.path }))
  }

  /** One table change to every agent in sync. `lazy`: committed without fsync; `hold`: a move's fence. */
  update(disk: DiskRec, change: Change, generation: number, { lazy = false, hold = false } = {}): void {
    const params = {
      generation,
      disk: disk.name,
      uid: disk.uid,
      size: disk.size,
      start: change.start,
      end: change.end,
      devices: this.devices(),
      ...(lazy ? { lazy: true } : {}),
      ...(hold ? { hold: true } : {}),
    }
    this.toAll('table.update', params, Table.encode(change.extents))
  }

  diskAdd(disk: DiskRec, generation: number): void {
    const params = {
      generation,
      disk: disk.name,
      uid: disk.uid,
      size: disk.size,
      devices: this.devices(),
      ...diskTraits(disk),
    }
    this.toAll('disk.add', params, Table.encode(disk.table))
  }

  diskRemove(disk: DiskRec, generation: number): void {
    this.toAll('disk.remove', { generation, disk: disk.name, uid: disk.uid })
  }

  diskReplace(disk: DiskRec, generation: number): void {
    this.toAll('table.replace', { generation, disk: disk.name, uid: disk.uid, size: disk.size }, Table.encode(disk.table))
  }

  /** Replace the agent's whole copy now (encoded and written synchronously); it is in sync from here. */
  load(a: AgentRec, why: string): void {
    const conn = a.conn
    if (!conn || conn.closed) return
    const disks = [...this.state.disks.values()]
    const bufs = disks.map((d) => Table.encode(d.table))
    const list: LoadDisk[] = disks.map((d, i) => ({
      name: d.name,
      uid: d.uid,
      size: d.size,
      generation: d.table.generation,
      bytes: bufs[i]!.length,
      ...diskTraits(d),
    }))
    const params = {
      generation: this.state.generation,
      durable: Math.min(this.durable(), this.state.generation),
      devices: this.devices(),
      disks: list,
    }
    a.inSync = true
    a.loading = true
    conn.call('table.load', params, { payload: Buffer.concat(bufs) }).then(
      (r: PushAck) => {
        counts(a, r)
        a.loading = false
        a.refreshedAt = new Date()
        log(`agent ${a.id}: table.load (${why}) acked at generation ${r.generation}`)
        this.agents.acked(a, r.generation)
        this.check()
      },
      (e: VstorError) => {
        a.loading = false
        if (a.conn !== conn || conn.closed) return
        a.inSync = false
        log(`agent ${a.id}: table.load (${why}) failed: ${e.message}`)
      },
    )
  }

  /** Periodic pass: reload agents out of sync, and those whose last full replacement is older than intervalMs. */
  refresh(intervalMs: number): void {
    const now = Date.now()
    for (const a of this.agents.connected()) {
      if (a.loading) continue
      if (!a.inSync) this.load(a, 'out of sync')
      else if (!a.refreshedAt || now - a.refreshedAt.getTime() >= intervalMs) this.load(a, 'intermittent replacement')
    }
  }

  /**
   * Resolve once every agent in `who` (default: every known agent) acked >= gen; reject with
   * AGENT_UNRESPONSIVE naming the ones that did not within timeoutMs. Never call under the lock.
   */
  acked(gen: number, opts: { timeoutMs: number; what: string; who?: AgentRec[] }): Promise<void> {
    const who = opts.who ?? this.agents.known()
    const ids = new Set(who.filter((a) => a.generation < gen).map((a) => a.id))
    if (ids.size === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        gen,
        ids,
        resolve,
        reject,
        what: opts.what,
        timer: setTimeout(() => this.expire(w), opts.timeoutMs),
      }
      this.waiters.add(w)
      this.check()
    })
  }

  /** Waiters whose agents all acked (or were forgotten / left) are resolved. */
  private check(): void {
    for (const w of this.waiters) {
      for (const id of w.ids) {
        const a = this.agents.byId.get(id)
        if (!a || a.forgotten || a.generation >= w.gen) w.ids.delete(id)
      }
      if (w.ids.size === 0) {
        this.waiters.delete(w)
        clearTimeout(w.timer)
        w.resolve()
      }
    }
  }

  private expire(w: Waiter): void {
    if (!this.waiters.delete(w)) return
    const names = [...w.ids].map((id) => {
      const a = this.agents.byId.get(id)
      return a ? `${this.agents.describe(a)} at generation ${a.generation}` : id
    })
    w.reject(
      new VstorError(
        'AGENT_UNRESPONSIVE',
        `${w.what}: agent ${names.join(', ')} did not apply generation ${w.gen} in time; check that host (\`vstor agent list\`), ` +
          'and only if it is gone for good, `vstor agent forget ID`',
      ),
    )
  }

  private toAll<M extends PushMethod>(method: M, params: ControllerToAgentMethods[M][0], payload?: Buffer): void {
    for (const a of this.agents.connected()) {
      if (!a.inSync) continue
      const conn = a.conn!
      ;(conn.call(method, params, payload ? { payload } : {}) as Promise<PushAck>).then(
        (r) => {
          counts(a, r) // before the ack wakes anyone
          this.agents.acked(a, r.generation)
          this.check()
        },
        (e: VstorError) => {
          if (a.conn !== conn || conn.closed) return // it reconnects and reloads
          log(`agent ${a.id}: ${method} failed: ${e.message}; reloading it`)
          a.inSync = false
          this.load(a, `after a failed ${method}`)
        },
      )
    }
  }
}
