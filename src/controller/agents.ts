// Connected agents and what the controller pushes to them.
// Invariants: pushes of table changes are sent in commit order (callers hold
// the state lock and send synchronously after apply); a full table.load is
// encoded and sent synchronously, so no change can slip between its snapshot
// and the frame; a slow or dead agent never blocks a mutation longer than
// PUSH_TIMEOUT_MS, and the periodic refresh repairs it.

import { Table, type Change } from '../table/table'
import type { Connection } from '../protocol/connection'
import type { AgentDevice, AgentInfo, ControllerToAgentMethods } from '../protocol/messages'
import { log } from './log'
import type { DiskRec, State } from './state'

export const PUSH_TIMEOUT_MS = 10_000
/** Disconnected agents stay listed in status this long. */
const FORGET_AFTER_MS = 10 * 60_000

export interface AgentRec {
  id: string
  mountpoint: string
  pid: number
  conn: Connection | null
  generation: number
  refreshedAt: Date | null
  loading: Promise<boolean> | null
  openDisks: string[]
  disconnectedAt: number
}

type PushMethod = keyof ControllerToAgentMethods

export class Agents {
  readonly byId = new Map<string, AgentRec>()
  private seq = 0

  constructor(private readonly state: State) {}

  register(conn: Connection, hello: { agentId?: string; mountpoint?: string; pid?: number; generation?: number }): AgentRec {
    const id = hello.agentId || `agent-${process.pid}-${++this.seq}`
    const old = this.byId.get(id)
    if (old?.conn && !old.conn.closed) old.conn.close()
    const rec: AgentRec = {
      id,
      mountpoint: hello.mountpoint ?? '',
      pid: hello.pid ?? 0,
      conn,
      generation: hello.generation ?? 0,
      refreshedAt: null,
      loading: null,
      openDisks: [],
      disconnectedAt: 0,
    }
    this.byId.set(id, rec)
    conn.on('close', () => {
      if (rec.conn !== conn) return
      rec.conn = null
      rec.openDisks = []
      rec.disconnectedAt = Date.now()
      log(`agent ${id} (${rec.mountpoint}) disconnected`)
    })
    log(
      `agent ${id} connected: mountpoint ${rec.mountpoint}, pid ${rec.pid}, generation ${rec.generation} (controller ${this.state.generation})`,
    )
    return rec
  }

  connected(): AgentRec[] {
    return [...this.byId.values()].filter((a) => a.conn && !a.conn.closed)
  }

  forConn(conn: Connection): AgentRec | undefined {
    for (const a of this.byId.values()) if (a.conn === conn) return a
    return undefined
  }

  openBy(disk: string): string[] {
    return this.connected()
      .filter((a) => a.openDisks.includes(disk))
      .map((a) => a.id)
  }

  info(): AgentInfo[] {
    return [...this.byId.values()].map((a) => ({
      id: a.id,
      mountpoint: a.mountpoint,
      pid: a.pid,
      connected: !!a.conn && !a.conn.closed,
      generation: a.generation,
      refreshedAt: a.refreshedAt ? a.refreshedAt.toISOString() : null,
      openDisks: a.openDisks,
    }))
  }

  devices(): AgentDevice[] {
    return [...this.state.devices.values()].map((d) => ({ id: d.id, name: d.name, path: d.path }))
  }

  /** Replace the agent's whole copy (every disk). Resolves when it acked (true) or failed; one load at a time per agent. */
  load(a: AgentRec, why: string): Promise<boolean> {
    const conn = a.conn
    if (!conn || conn.closed) return Promise.resolve(false)
    if (a.loading) return a.loading
    const disks = [...this.state.disks.values()]
    const bufs = disks.map((d) => Table.encode(d.table))
    const params = {
      generation: this.state.generation,
      devices: this.devices(),
      disks: disks.map((d, i) => ({ name: d.name, size: d.size, generation: d.table.generation, bytes: (bufs[i] as Buffer).length })),
    }
    const p = conn.call('table.load', params, { payload: Buffer.concat(bufs), timeoutMs: PUSH_TIMEOUT_MS })
    a.loading = p.then(
      (r) => {
        a.loading = null
        a.generation = r.generation
        a.refreshedAt = new Date()
        log(`agent ${a.id}: table.load (${why}) acked at generation ${r.generation}`)
        return true
      },
      (e: Error) => {
        a.loading = null
        log(`agent ${a.id}: table.load (${why}) failed: ${e.message}`)
        return false
      },
    )
    return a.loading
  }

  /** Make sure the agent has applied generation `gen` (a load in flight may predate it: then load again). */
  async ensure(a: AgentRec, gen: number, why: string): Promise<boolean> {
    for (let i = 0; i < 2 && a.generation < gen; i++) if (!(await this.load(a, why)) && !a.loading) break
    return a.generation >= gen
  }

  /** Send one push to every connected agent (synchronously), then await every ack. Returns the ids that acked. */
  private async pushAll<M extends PushMethod>(
    method: M,
    params: ControllerToAgentMethods[M][0],
    payload?: Buffer,
    which: (a: AgentRec) => boolean = () => true,
  ): Promise<Set<string>> {
    const sent = this.connected()
      .filter(which)
      .map((a) => {
        const conn = a.conn as Connection
        const p = conn.call(method, params, { payload, timeoutMs: PUSH_TIMEOUT_MS }) as Promise<{ generation: number }>
        return p.then(
          (r) => {
            a.generation = r.generation
            return a.id
          },
          (e: Error) => {
            log(`agent ${a.id}: ${method} failed: ${e.message}; it will be reloaded`)
            void this.load(a, `after failed ${method}`)
            return null
          },
        )
      })
    const ids = await Promise.all(sent)
    return new Set(ids.filter((x): x is string => x !== null))
  }

  pushUpdate(disk: DiskRec, change: Change, generation: number): Promise<Set<string>> {
    const params = { generation, disk: disk.name, size: disk.size, start: change.start, end: change.end, devices: this.devices() }
    return this.pushAll('table.update', params, Table.encode(change.extents))
  }

  /**
   * A change mapping fresh units: the faulting agent zero-fills them and acks
   * first; only then do the others learn the mapping (without zeroFill), so no
   * late zero-fill can land on data written after the retry.
   */
  async pushFreshUpdate(disk: DiskRec, change: Change, generation: number, faulting: string): Promise<Set<string>> {
    const params = { generation, disk: disk.name, size: disk.size, start: change.start, end: change.end, devices: this.devices() }
    const payload = Table.encode(change.extents)
    const first = await this.pushAll('table.update', { ...params, zeroFill: true }, payload, (a) => a.id === faulting)
    const rest = await this.pushAll('table.update', params, payload, (a) => a.id !== faulting)
    return new Set([...first, ...rest])
  }

  pushDiskAdd(disk: DiskRec, generation: number): Promise<Set<string>> {
    return this.pushAll('disk.add', { generation, disk: disk.name, size: disk.size, devices: this.devices() }, Table.encode(disk.table))
  }

  pushDiskRemove(name: string, generation: number): Promise<Set<string>> {
    return this.pushAll('disk.remove', { generation, disk: name })
  }

  /** Periodic pass: reload agents that are behind, and every agent whose last full replacement is older than intervalMs. */
  refresh(intervalMs: number): void {
    const now = Date.now()
    for (const [id, a] of this.byId) if (!a.conn && now - a.disconnectedAt > FORGET_AFTER_MS) this.byId.delete(id)
    for (const a of this.connected()) {
      if (a.generation !== this.state.generation)
        void this.load(a, `agent at generation ${a.generation}, controller at ${this.state.generation}`)
      else if (!a.refreshedAt || now - a.refreshedAt.getTime() >= intervalMs) void this.load(a, 'intermittent replacement')
    }
  }
}
