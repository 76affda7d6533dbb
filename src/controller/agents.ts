// Every agent the controller knows, connected or not, persisted in SQLite.
//
// Invariants:
//   * an agent stays known (it may hold fds and a table, and serve mapped I/O
//     while disconnected) until it says bye on a clean unmount or an admin
//     forgets it; nothing forgets it on a timer;
//   * each agent process holds an epoch: a fresh process gets the record's epoch
//     + 1, a reconnect must present its epoch, and a stale one is refused
//     (FENCED), so a forgotten or replaced process can never come back with an
//     old table;
//   * `generation` is the last generation the agent acked; a lower persisted
//     value after a restart is only ever conservative (quarantine waits longer);
//   * openDisks is kept while disconnected: disk delete without --force is
//     refused while any known agent reports the disk open.

import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { AgentInfo, Hello } from '../protocol/messages'
import type { Db } from './db'
import { log } from './log'

export interface AgentRec {
  id: string
  mountpoint: string
  pid: number
  epoch: number
  generation: number
  /** Requests the agent had served at its last ack of a pushed change (null: not reported). */
  served: number | null
  /** Writes the agent had finished at its last ack of a pushed change (null: not reported). */
  written: number | null
  /** Its recent acks of table.update by generation: when the range was blocked, when applied (its clock, ms). */
  applied: Map<number, { blockedAt: number; appliedAt: number }>
  openDisks: string[]
  forgotten: boolean
  firstSeen: string
  lastSeen: string
  conn: Connection | null
  /** Updates may be pushed: the agent has (or is being sent) every change up to now. */
  inSync: boolean
  refreshedAt: Date | null
  loading: boolean
  frontend: string | null
  /** Label uuids the agent found on its host (from hello). */
  devices: string[] | null
  /** Label uuids of pool devices the agent reports it cannot open. */
  missing: string[]
  /** In SQLite: it acked a table once. Until then it holds nothing and does not count (a failed hello leaves no record). */
  persisted: boolean
}

type Row = Record<string, string | number>

export class Agents {
  readonly byId = new Map<string, AgentRec>()
  /** Called when an agent's acked generation rises, it is forgotten, or it leaves (ack waiters, quarantine). */
  onChange: () => void = () => {}

  constructor(private readonly db: Db) {}

  async loadFromDb(): Promise<void> {
    for (const r of await this.db.all<Row>('SELECT * FROM agents')) {
      let open: string[] = []
      try {
        const v = JSON.parse(String(r.open_disks)) as unknown
        if (Array.isArray(v)) open = v.filter((x): x is string => typeof x === 'string')
      } catch {
        // a damaged list counts as nothing open
      }
      this.byId.set(String(r.id), {
        id: String(r.id),
        mountpoint: String(r.mountpoint),
        pid: 0,
        epoch: Number(r.epoch),
        generation: Number(r.generation),
        served: null,
        written: null,
        applied: new Map(),
        openDisks: open,
        forgotten: Number(r.forgotten) !== 0,
        firstSeen: String(r.first_seen),
        lastSeen: String(r.last_seen),
        conn: null,
        inSync: false,
        refreshedAt: null,
        loading: false,
        frontend: null,
        devices: null,
        missing: [],
        persisted: true,
      })
    }
  }

  /** Agents whose acks count: every one that ever took a table and is not forgotten, connected or not. */
  known(): AgentRec[] {
    return [...this.byId.values()].filter((a) => a.persisted && !a.forgotten)
  }

  connected(): AgentRec[] {
    return [...this.byId.values()].filter((a) => a.conn !== null && !a.conn.closed)
  }

  forConn(conn: Connection): AgentRec | undefined {
    for (const a of this.byId.values()) if (a.conn === conn) return a
    return undefined
  }

  /** Lowest generation every known agent has acked (Infinity when none is known). */
  minGeneration(): number {
    let min = Infinity
    for (const a of this.known()) min = Math.min(min, a.generation)
    return min
  }

  /** Known agents that report the disk open (connected or not). */
  openBy(disk: string): AgentRec[] {
    return this.known().filter((a) => a.openDisks.includes(disk))
  }

  describe(a: AgentRec): string {
    const state = a.conn && !a.conn.closed ? 'connected' : `disconnected, last seen ${a.lastSeen}`
    return `${a.id} (${state})`
  }

  /**
   * Admit an agent's hello: fence a stale epoch, give a fresh process the next epoch. Nothing is
   * written until the agent acks its first table (see acked), so failed hellos leave no record.
   */
  admit(hello: Hello, fallbackId: string): AgentRec {
    const id = hello.agentId || fallbackId
    const old = this.byId.get(id)
    if (hello.epoch !== undefined && old && hello.epoch < old.epoch) {
      throw new VstorError(
        'FENCED',
        `agent ${id} was ${old.forgotten ? 'forgotten' : 'replaced by a newer process'} (its epoch ${hello.epoch} is older than ${old.epoch}): it must not serve its old table; unmount it and mount again`,
      )
    }
    const now = new Date().toISOString()
    const epoch = hello.epoch ?? (old?.epoch ?? 0) + 1
    const rec: AgentRec = {
      id,
      mountpoint: hello.mountpoint ?? '',
      pid: hello.pid ?? 0,
      epoch,
      generation: hello.generation ?? 0,
      served: null,
      written: null,
      applied: new Map(),
      openDisks: old && hello.epoch !== undefined ? old.openDisks : [],
      forgotten: false,
      firstSeen: old?.firstSeen ?? now,
      lastSeen: now,
      conn: null,
      inSync: false,
      refreshedAt: null,
      loading: false,
      frontend: hello.frontend ?? null,
      devices: hello.devices ?? null,
      missing: [],
      // a new process of a known agent stays known (at generation 0 until it acks its first table)
      persisted: old?.persisted ?? false,
    }
    return rec
  }

  /** Make an admitted record live on its connection (replacing any older connection of that id). */
  attach(rec: AgentRec, conn: Connection): void {
    const old = this.byId.get(rec.id)
    if (old?.conn && old.conn !== conn && !old.conn.closed) old.conn.close()
    rec.conn = conn
    this.byId.set(rec.id, rec)
    conn.on('close', () => {
      if (rec.conn !== conn) return
      rec.conn = null
      rec.inSync = false
      rec.lastSeen = new Date().toISOString()
      if (!rec.persisted) {
        // it never took a table: it holds nothing, so nothing of it is kept (a failed hello leaves no record)
        if (this.byId.get(rec.id) === rec) this.byId.delete(rec.id)
        log(`agent ${rec.id} (${rec.mountpoint}) disconnected before it took a table; not kept`, 'agent left before its table')
        this.onChange()
        return
      }
      log(
        `agent ${rec.id} (${rec.mountpoint}) disconnected; it stays known until it comes back or \`vstor agent forget ${rec.id}\``,
        'agent disconnected',
      )
      void this.persist(rec)
      this.onChange()
    })
    log(
      `agent ${rec.id} connected: mountpoint ${rec.mountpoint}, pid ${rec.pid}, epoch ${rec.epoch}, generation ${rec.generation}`,
      'agent connected',
    )
    this.onChange() // a reconnect may arrive at a generation someone waits for
  }

  /** The agent applied up to gen. Its first ack makes it known (and persisted). */
  acked(a: AgentRec, gen: number): void {
    if (!a.persisted) {
      a.persisted = true
      a.generation = Math.max(a.generation, gen)
      void this.upsert(a)
      this.onChange()
      return
    }
    if (gen <= a.generation) return
    a.generation = gen
    this.onChange()
  }

  private async upsert(a: AgentRec): Promise<void> {
    await this.db
      .tx(() =>
        this.db.run(
          `INSERT INTO agents (id, mountpoint, epoch, generation, open_disks, forgotten, first_seen, last_seen)
           VALUES (?, ?, ?, ?, ?, 0, ?, ?)
           ON CONFLICT(id) DO UPDATE SET mountpoint = excluded.mountpoint, epoch = excluded.epoch, generation = excluded.generation,
             open_disks = excluded.open_disks, forgotten = 0, last_seen = excluded.last_seen`,
          [a.id, a.mountpoint, a.epoch, a.generation, JSON.stringify(a.openDisks), a.firstSeen, a.lastSeen],
        ),
      )
      .catch((e: Error) => log(`agent ${a.id}: could not save its record: ${e.message}`))
  }

  setOpen(a: AgentRec, disks: string[]): void {
    a.openDisks = disks
    void this.persist(a)
  }

  /** An admin declares the agent gone: raise its epoch, drop its holds, close it if connected. */
  async forget(id: string): Promise<AgentRec> {
    const a = this.byId.get(id)
    if (!a) throw new VstorError('NOT_FOUND', `no agent '${id}'; see \`vstor agent list\``)
    a.epoch++
    a.forgotten = true
    a.openDisks = []
    await this.persist(a)
    log(`agent ${id} forgotten by an admin: epoch raised to ${a.epoch}; if it reconnects it is refused`)
    if (a.conn && !a.conn.closed) a.conn.close()
    this.onChange()
    return a
  }

  /** Clean unmount: the agent holds nothing any more. */
  async bye(a: AgentRec): Promise<void> {
    if (this.byId.get(a.id) === a) this.byId.delete(a.id)
    await this.db.tx(() => this.db.run('DELETE FROM agents WHERE id = ?', [a.id]))
    log(`agent ${a.id} said bye (clean unmount)`)
    this.onChange()
  }

  /** Per agent, a save queued and not started yet: later calls ride on it (it reads the fields when it runs). */
  private readonly queued = new Map<AgentRec, Promise<void>>()

  /**
   * Write the record's mutable fields (generation, open disks, epoch, forgotten, last seen). At most one
   * save per agent waits for the database, so an agent flooding open/close notes cannot queue a
   * transaction per note (unbounded memory, backups and stop waiting behind them).
   */
  persist(a: AgentRec): Promise<void> {
    if (!this.byId.has(a.id) || !a.persisted) return Promise.resolve()
    const waiting = this.queued.get(a)
    if (waiting) return waiting
    const p: Promise<void> = this.db
      .tx(() => {
        if (this.queued.get(a) === p) this.queued.delete(a)
        return this.db.run('UPDATE agents SET generation = ?, open_disks = ?, epoch = ?, forgotten = ?, last_seen = ? WHERE id = ?', [
          a.generation,
          JSON.stringify(a.openDisks),
          a.epoch,
          a.forgotten ? 1 : 0,
          a.conn ? new Date().toISOString() : a.lastSeen,
          a.id,
        ])
      })
      .then(
        () => undefined,
        (e: Error) => log(`agent ${a.id}: could not save its record: ${e.message}`, 'agent record not saved'),
      )
      .finally(() => {
        if (this.queued.get(a) === p) this.queued.delete(a)
      })
    this.queued.set(a, p)
    return p
  }

  info(a: AgentRec, missingDevices: string[] = []): AgentInfo {
    return {
      id: a.id,
      mountpoint: a.mountpoint,
      pid: a.pid,
      connected: a.conn !== null && !a.conn.closed,
      generation: a.generation,
      refreshedAt: a.refreshedAt ? a.refreshedAt.toISOString() : null,
      openDisks: a.openDisks,
      epoch: a.epoch,
      lastSeen: a.conn ? new Date().toISOString() : a.lastSeen,
      frontend: a.frontend,
      missingDevices,
      forgotten: a.forgotten,
    }
  }
}
