// The controller's model: devices, disks and their tables, and where free
// space stands, mirrored from SQLite.
//
// Invariants:
//   * SQLite is written first (one transaction per change) and memory changes
//     only after the commit succeeded; every table change bumps the one global
//     generation;
//   * every data byte of a device is in exactly one of: mapped (by extents of
//     disks), quarantined (freed at a generation some known agent may not have
//     applied yet), dirty free, clean free (see allocator.ts and space.ts);
//   * space a change stops mapping loses one reference (refs.ts); space whose
//     last reference went is quarantined at the change's generation, never
//     handed out directly: an agent with an older table may still write it.
// Loading and the start-time integrity check live in load.ts.

import crypto from 'node:crypto'
import { LABEL_AREA, UNIT } from '../config'
import { VstorError } from '../errors'
import type { DeviceInfo, DiskInfo, DiskMap } from '../protocol/messages'
import { Flag, NO_DEVICE, Table, type Change, type Extent } from '../table/table'
import { subtractDeviceRanges } from '../table/arrays'
import { Allocator, type Span } from './allocator'
import type { Db, SqlParam } from './db'
import { Mutex } from './mutex'
import { Refs, type Adjust, type RefPlan } from './refs'

export interface DeviceRec {
  id: number
  name: string
  path: string
  uuid: string
  kind: 'file' | 'block'
  size: number
  dataStart: number
  health: 'ok' | 'error'
  errors: number
  createdAt: string
  /** evacuating: nothing new is allocated here while a job moves everything off; evacuated: empty, ready to remove. */
  state: DeviceState
}
export type DeviceState = 'active' | 'evacuating' | 'evacuated'
export interface DiskRec {
  id: number
  /** Identity beyond the name: a new disk of the same name has another uid. */
  uid: string
  name: string
  size: number
  thin: boolean
  createdAt: string
  table: Table
  origin: string | null
  readonly: boolean
  /** Device ids this disk's space may come from (`disk create --device`); null: any. */
  devices: number[] | null
}
export interface QEntry extends Span {
  generation: number
}

/** plan() returns an empty change when the table already says what was asked. */
export function isEmpty(change: Change): boolean {
  return change.extents.length === 0
}

export function capacity(size: number): number {
  return Math.max(0, Math.floor((size - LABEL_AREA) / UNIT) * UNIT)
}

/** The mapped parts of extents as device spans. */
export function spansOf(extents: Iterable<Extent>): Span[] {
  const out: Span[] = []
  for (const e of extents) if (e.device !== NO_DEVICE) out.push({ device: e.device, pstart: e.pstart, length: e.length })
  return out
}

export interface CommitOptions {
  /** Lazy: no fsync (WAL synchronous=NORMAL) until the next barrier; agents learn it is lazy. */
  durable?: boolean
  /** The caller took the newly mapped spans from the allocator already (reserved while it zeroed or copied). */
  preTaken?: boolean
  /** The newly mapped spans are mapped by other extents already: share them (one more reference each). */
  share?: boolean
  /** More statements in the same transaction (dirty rows, job checkpoints …). */
  extra?: () => Promise<void>
}

export class State {
  /** Serializes every mutation: plan → commit → apply → enqueue. Never held across an agent round trip. */
  readonly lock = new Mutex()
  readonly devices = new Map<number, DeviceRec>()
  readonly disks = new Map<string, DiskRec>()
  readonly alloc = new Allocator()
  /** Freed space waiting for every known agent to pass its generation (space.ts releases it). */
  quarantine: QEntry[] = []
  /** Reference counts of shared physical ranges (snapshots, clones). */
  refs = new Refs()
  controllerId = ''
  generation = 0
  /** Every commit up to this generation is on disk (lazy commits after it wait for a barrier). */
  durable = 0
  /** This run of the controller (meta 'boot', raised at every start). */
  boot = 0

  constructor(readonly db: Db) {}

  /** Make every commit so far durable (an agent's fsync after lazy allocations). */
  async barrier(): Promise<number> {
    const gen = this.generation
    await this.db.barrier()
    this.durable = Math.max(this.durable, gen)
    return gen
  }

  disk(name: string): DiskRec {
    const d = this.disks.get(name)
    if (!d) throw new VstorError('NOT_FOUND', `no disk named '${name}'; see \`vstor disk list\``)
    return d
  }

  deviceByName(name: string): DeviceRec {
    for (const d of this.devices.values()) if (d.name === name) return d
    throw new VstorError('NOT_FOUND', `no device named '${name}'; see \`vstor device list\``)
  }

  /**
   * Devices new space for this disk may come from, for the agent that asks: the disk's own list
   * (or every healthy, active device), without the devices that agent cannot see when others remain.
   */
  poolFor(disk: DiskRec, missing: string[] = []): number[] {
    const ids = disk.devices
      ? disk.devices.filter((id) => {
          const d = this.devices.get(id)
          return d && d.health === 'ok' && d.state === 'active'
        })
      : this.allocatable()
    const lacking = new Set(missing)
    const seen = ids.filter((id) => !lacking.has(this.devices.get(id)?.uuid ?? ''))
    return seen.length > 0 ? seen : ids
  }

  /** Ids of devices new space may come from: healthy, not evacuating, optionally restricted by name. */
  allocatable(names?: string[]): number[] {
    if (names && names.length > 0) {
      return names.map((n) => {
        const d = this.deviceByName(n)
        if (d.state !== 'active') throw new VstorError('DEVICE_BUSY', `device '${n}' is ${d.state}; choose another`)
        return d.id
      })
    }
    return [...this.devices.values()].filter((d) => d.health === 'ok' && d.state === 'active').map((d) => d.id)
  }

  quarantinedBytes(device: number): number {
    let s = 0
    for (const q of this.quarantine) if (q.device === device) s += q.length
    return s
  }

  deviceInfo(d: DeviceRec): DeviceInfo {
    const cap = capacity(d.size)
    const free = this.alloc.freeBytes(d.id)
    return {
      name: d.name,
      path: d.path,
      uuid: d.uuid,
      kind: d.kind,
      size: d.size,
      dataStart: d.dataStart,
      capacity: cap,
      used: cap - free,
      free,
      quarantined: this.quarantinedBytes(d.id),
      scrubbing: this.alloc.dirtyBytes(d.id),
      health: d.health,
      state: d.state,
      errors: d.errors,
    }
  }

  diskInfo(d: DiskRec, openBy: string[]): DiskInfo {
    const allocated = d.table.allocated()
    let shared = 0
    for (const e of spansOf(d.table.all())) shared += this.refs.sharedBytes(e)
    let origin: string | null = null
    if (d.origin) for (const o of this.disks.values()) if (o.uid === d.origin) origin = o.name
    return {
      name: d.name,
      size: d.size,
      allocated,
      thin: d.thin,
      generation: d.table.generation,
      extents: d.table.count,
      openBy,
      origin,
      readonly: d.readonly,
      exclusive: allocated - shared,
      shared,
    }
  }

  /** The table as admins read it; extents are split where sharing starts or ends, so `shared` is exact. */
  diskMap(d: DiskRec): DiskMap {
    const out: DiskMap['extents'] = []
    const push = (e: Extent, shared: boolean) =>
      out.push({
        offset: e.vstart,
        length: e.length,
        device: e.device === NO_DEVICE ? null : (this.devices.get(e.device)?.name ?? `#${e.device}`),
        deviceOffset: e.device === NO_DEVICE ? null : e.pstart,
        invalid: (e.flags & Flag.Invalid) !== 0,
        noWrite: (e.flags & Flag.NoWrite) !== 0,
        zero: (e.flags & Flag.Zero) !== 0,
        error: (e.flags & Flag.Error) !== 0,
        shared,
      })
    for (const e of d.table.all()) {
      if (e.device === NO_DEVICE) {
        push(e, false)
        continue
      }
      let pos = e.pstart
      const end = e.pstart + e.length
      const piece = (a: number, b: number, shared: boolean) =>
        push({ ...e, vstart: e.vstart + (a - e.pstart), length: b - a, pstart: a }, shared)
      for (const s of this.refs.shared(e.device, pos, end)) {
        if (s.start > pos) piece(pos, s.start, false)
        piece(s.start, s.end, true)
        pos = s.end
      }
      if (pos < end) piece(pos, end, false)
    }
    return { name: d.name, size: d.size, generation: d.table.generation, extents: out }
  }

  async bumpGeneration(): Promise<number> {
    const gen = this.generation + 1
    await this.db.queue("UPDATE meta SET value = ? WHERE key = 'generation'", [String(gen)])
    return gen
  }

  async insertExtents(diskId: number, extents: Extent[]): Promise<void> {
    // multi-row inserts: one round trip per 1000 rows keeps million-extent tables quick
    const BATCH = 1000
    for (let i = 0; i < extents.length; i += BATCH) {
      const part = extents.slice(i, i + BATCH)
      const params: SqlParam[] = []
      for (const e of part) params.push(diskId, e.vstart, e.length, e.device === NO_DEVICE ? null : e.device, e.pstart, e.flags)
      await this.db.queue(
        `INSERT INTO extents (disk_id, vstart, length, device_id, pstart, flags) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
        params,
      )
    }
  }

  /** Quarantine rows for spans freed at `gen` (inside a transaction); memory follows in applyQuarantine. */
  async insertQuarantine(spans: Span[], gen: number): Promise<void> {
    for (const s of spans)
      await this.db.queue('INSERT INTO quarantine (device_id, pstart, length, generation) VALUES (?, ?, ?, ?)', [
        s.device,
        s.pstart,
        s.length,
        gen,
      ])
  }

  applyQuarantine(spans: Span[], gen: number): void {
    for (const s of spans) this.quarantine.push({ ...s, generation: gen })
  }

  /**
   * Commit a planned change of one disk to SQLite (one transaction, with `extra`), then apply it in
   * memory: newly mapped spans leave the free sets (unless preTaken), spans no longer mapped go to
   * quarantine at the new generation. Returns the new generation.
   */
  async commitChange(disk: DiskRec, change: Change, opts: CommitOptions = {}): Promise<number> {
    if (isEmpty(change)) {
      if (opts.extra) await this.db.tx(opts.extra)
      return this.generation
    }
    const t = disk.table
    const old = t.slice(change.start, change.end)
    const dropped = spansOf(subtractDeviceRanges(old, change.extents))
    const gained = spansOf(subtractDeviceRanges(change.extents, old))
    const adjusts: Adjust[] = dropped.map((span) => ({ span, delta: -1 }))
    if (opts.share) for (const span of gained) adjusts.push({ span, delta: 1 })
    const refs = this.refs.plan(adjusts)
    const taking = !opts.preTaken && !opts.share
    if (taking) this.alloc.take(gained) // throws before anything is written if a byte is not free
    let gen = 0
    try {
      await this.db.tx(
        async () => {
          await this.writeChange(disk, change)
          gen = await this.bumpGeneration()
          await this.db.queue('UPDATE disks SET generation = ? WHERE id = ?', [gen, disk.id])
          await this.insertQuarantine(refs.freed, gen)
          await this.refs.persist(this.db, refs)
          if (opts.extra) await opts.extra()
        },
        { durable: opts.durable ?? true },
      )
    } catch (e) {
      if (taking) this.alloc.give(gained, false)
      throw e
    }
    this.refs.apply(refs)
    this.applyQuarantine(refs.freed, gen)
    t.apply(change, gen)
    this.generation = gen
    if (opts.durable ?? true) this.durable = gen
    return gen
  }

  /** The rows of a change: the cut extents keep their outside parts, the change's extents replace the rest. */
  async writeChange(disk: DiskRec, change: Change): Promise<void> {
    const t = disk.table
    await this.db.queue('DELETE FROM extents WHERE disk_id = ? AND vstart >= ? AND vstart < ?', [disk.id, change.start, change.end])
    if (change.start > 0) {
      const i = t.find(change.start)
      if (t.vstart(i) < change.start)
        await this.db.queue('UPDATE extents SET length = ? WHERE disk_id = ? AND vstart = ?', [
          change.start - t.vstart(i),
          disk.id,
          t.vstart(i),
        ])
    }
    if (change.end < t.size) {
      const i = t.find(change.end)
      if (t.vstart(i) < change.end) {
        const e = t.get(i)
        const cut = change.end - e.vstart
        await this.insertExtents(disk.id, [
          {
            vstart: change.end,
            length: e.length - cut,
            device: e.device,
            pstart: e.device === NO_DEVICE ? 0 : e.pstart + cut,
            flags: e.flags,
          },
        ])
      }
    }
    await this.insertExtents(disk.id, change.extents)
  }

  /** Insert a new disk with its table's extents (planned by the allocator and taken already). */
  async createDisk(
    name: string,
    size: number,
    thin: boolean,
    extents: Extent[],
    opts: { extra?: () => Promise<void>; origin?: string | null; readonly?: boolean; devices?: number[] | null } = {},
  ): Promise<DiskRec> {
    const createdAt = new Date().toISOString()
    const uid = crypto.randomUUID().replace(/-/g, '')
    let id = 0
    let gen = 0
    const table = new Table(size, extents, this.generation)
    table.assertInvariant()
    await this.db.tx(async () => {
      gen = await this.bumpGeneration()
      id = (
        await this.db.run(
          'INSERT INTO disks (name, size, thin, generation, created_at, uid, origin, readonly, devices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [
            name,
            size,
            thin ? 1 : 0,
            gen,
            createdAt,
            uid,
            opts.origin ?? null,
            opts.readonly ? 1 : 0,
            opts.devices ? JSON.stringify(opts.devices) : null,
          ],
        )
      ).lastID
      await this.insertExtents(id, table.all())
      if (opts.extra) await opts.extra()
    })
    table.generation = gen
    const disk: DiskRec = {
      id,
      uid,
      name,
      size,
      thin,
      createdAt,
      table,
      origin: opts.origin ?? null,
      readonly: !!opts.readonly,
      devices: opts.devices ?? null,
    }
    this.disks.set(name, disk)
    this.generation = gen
    this.durable = gen
    return disk
  }

  /** One reference less on each mapped span of these extents: the plan says which spans are free now. */
  unref(extents: Extent[]): RefPlan {
    return this.refs.plan(spansOf(extents).map((span) => ({ span, delta: -1 })))
  }

  /** Delete a disk; space only it mapped goes to quarantine at the delete's generation, shared space loses a reference. */
  async deleteDisk(disk: DiskRec): Promise<number> {
    const refs = this.unref(disk.table.all())
    let gen = 0
    await this.db.tx(async () => {
      await this.db.run('DELETE FROM disks WHERE id = ?', [disk.id])
      gen = await this.bumpGeneration()
      await this.insertQuarantine(refs.freed, gen)
      await this.refs.persist(this.db, refs)
    })
    this.disks.delete(disk.name)
    this.refs.apply(refs)
    this.applyQuarantine(refs.freed, gen)
    this.generation = gen
    this.durable = gen
    return gen
  }

  /** A new device: its whole data area is dirty until the scrubber zeroed it. */
  async insertDevice(d: Omit<DeviceRec, 'id'>): Promise<DeviceRec> {
    const cap = capacity(d.size)
    const r = await this.db.tx(async () => {
      const row = await this.db.run(
        'INSERT INTO devices (name, path, uuid, kind, size, data_start, health, errors, created_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [d.name, d.path, d.uuid, d.kind, d.size, d.dataStart, d.health, d.errors, d.createdAt, d.state],
      )
      if (cap > 0) await this.db.run('INSERT INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [row.lastID, d.dataStart, cap])
      return row
    })
    const rec: DeviceRec = { ...d, id: r.lastID }
    this.devices.set(rec.id, rec)
    this.alloc.addDevice(rec.id, rec.dataStart, rec.dataStart + cap, true)
    return rec
  }

  async deleteDevice(d: DeviceRec): Promise<void> {
    await this.db.tx(() => this.db.run('DELETE FROM devices WHERE id = ?', [d.id]))
    this.devices.delete(d.id)
    this.alloc.removeDevice(d.id)
    this.refs.dropDevice(d.id)
  }

  /** Disks with extents on a device. */
  usersOf(device: number): string[] {
    const out: string[] = []
    for (const d of this.disks.values()) {
      const t = d.table
      for (let i = 0; i < t.count; i++) {
        if (t.device(i) === device) {
          out.push(d.name)
          break
        }
      }
    }
    return out
  }
}
