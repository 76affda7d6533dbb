// The controller's model: devices, disks and their tables, mirrored from
// SQLite. Invariants: SQLite is written first (one transaction per change)
// and memory is changed only after the commit succeeded; every table change
// bumps the one global generation; the allocator's free lists are the
// complement of all mapped extents.

import { LABEL_AREA, UNIT } from '../config'
import { VstorError } from '../errors'
import type { DeviceInfo, DiskInfo, DiskMap } from '../protocol/messages'
import { Flag, NO_DEVICE, Table, type Change, type Extent } from '../table/table'
import { Allocator } from './allocator'
import type { Db, SqlParam } from './db'
import { Mutex } from './mutex'

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
}
export interface DiskRec {
  id: number
  name: string
  size: number
  thin: boolean
  createdAt: string
  table: Table
}

/** plan() returns an empty change when the table already says what was asked. */
export function isEmpty(change: Change): boolean {
  return change.extents.length === 0
}

export function capacity(size: number): number {
  return Math.max(0, Math.floor((size - LABEL_AREA) / UNIT) * UNIT)
}

interface ExtentRow {
  disk_id: number
  vstart: number
  length: number
  device_id: number | null
  pstart: number
  flags: number
}

export class State {
  /** Serializes every mutating operation (plan → commit → apply → push). */
  readonly lock = new Mutex()
  readonly devices = new Map<number, DeviceRec>()
  readonly disks = new Map<string, DiskRec>()
  readonly alloc = new Allocator()
  controllerId = ''
  generation = 0

  private constructor(readonly db: Db) {}

  static async load(db: Db): Promise<State> {
    const s = new State(db)
    const meta = await db.all<{ key: string; value: string }>('SELECT key, value FROM meta')
    const m = new Map(meta.map((r) => [r.key, r.value]))
    s.controllerId = m.get('controller_id') ?? ''
    s.generation = Number(m.get('generation') ?? 0)
    const corrupt = (why: string) =>
      new VstorError('DB_CORRUPT', `database ${db.file} is inconsistent (${why}): restore it from backup (see vstor-controller(8))`)
    for (const r of await db.all<Record<string, string | number>>('SELECT * FROM devices ORDER BY id')) {
      const d: DeviceRec = {
        id: Number(r.id),
        name: String(r.name),
        path: String(r.path),
        uuid: String(r.uuid),
        kind: r.kind === 'block' ? 'block' : 'file',
        size: Number(r.size),
        dataStart: Number(r.data_start),
        health: r.health === 'error' ? 'error' : 'ok',
        errors: Number(r.errors),
        createdAt: String(r.created_at),
      }
      s.devices.set(d.id, d)
      s.alloc.addDevice(d.id, d.dataStart, d.dataStart + capacity(d.size))
    }
    const byDisk = new Map<number, Extent[]>()
    const mapped: Extent[] = []
    for (const r of await db.all<ExtentRow>('SELECT * FROM extents ORDER BY disk_id, vstart')) {
      const e: Extent = { vstart: r.vstart, length: r.length, device: r.device_id ?? NO_DEVICE, pstart: r.pstart, flags: r.flags }
      let list = byDisk.get(r.disk_id)
      if (!list) byDisk.set(r.disk_id, (list = []))
      list.push(e)
      if (e.device !== NO_DEVICE) mapped.push(e)
    }
    for (const r of await db.all<Record<string, string | number>>('SELECT * FROM disks ORDER BY id')) {
      const id = Number(r.id)
      const size = Number(r.size)
      let table: Table
      try {
        table = new Table(size, byDisk.get(id) ?? [], Number(r.generation))
        table.assertInvariant()
      } catch (e) {
        throw corrupt(`disk ${r.name}: ${(e as Error).message}`)
      }
      s.disks.set(String(r.name), { id, name: String(r.name), size, thin: Number(r.thin) !== 0, createdAt: String(r.created_at), table })
    }
    // in device order, so each reservation splits the last free run
    mapped.sort((a, b) => a.device - b.device || a.pstart - b.pstart)
    try {
      s.alloc.reserve(mapped)
    } catch (e) {
      throw corrupt(`extents overlap on a device or lie outside it: ${(e as Error).message}`)
    }
    return s
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

  /** Ids of devices new space may come from: healthy ones, optionally restricted by name. */
  allocatable(names?: string[]): number[] {
    if (names && names.length > 0) return names.map((n) => this.deviceByName(n).id)
    return [...this.devices.values()].filter((d) => d.health === 'ok').map((d) => d.id)
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
      health: d.health,
      errors: d.errors,
    }
  }

  diskInfo(d: DiskRec, openBy: string[]): DiskInfo {
    return {
      name: d.name,
      size: d.size,
      allocated: d.table.allocated(),
      thin: d.thin,
      generation: d.table.generation,
      extents: d.table.count,
      openBy,
    }
  }

  diskMap(d: DiskRec): DiskMap {
    const extents = d.table.all().map((e) => ({
      offset: e.vstart,
      length: e.length,
      device: e.device === NO_DEVICE ? null : (this.devices.get(e.device)?.name ?? `#${e.device}`),
      deviceOffset: e.device === NO_DEVICE ? null : e.pstart,
      invalid: (e.flags & Flag.Invalid) !== 0,
      noWrite: (e.flags & Flag.NoWrite) !== 0,
      zero: (e.flags & Flag.Zero) !== 0,
      error: (e.flags & Flag.Error) !== 0,
    }))
    return { name: d.name, size: d.size, generation: d.table.generation, extents }
  }

  private async bumpGeneration(): Promise<number> {
    const gen = this.generation + 1
    await this.db.run("UPDATE meta SET value = ? WHERE key = 'generation'", [String(gen)])
    return gen
  }

  private async insertExtents(diskId: number, extents: Extent[]): Promise<void> {
    // multi-row inserts: one round trip per 1000 rows keeps million-extent tables quick
    const BATCH = 1000
    for (let i = 0; i < extents.length; i += BATCH) {
      const part = extents.slice(i, i + BATCH)
      const params: SqlParam[] = []
      for (const e of part) params.push(diskId, e.vstart, e.length, e.device === NO_DEVICE ? null : e.device, e.pstart, e.flags)
      await this.db.run(
        `INSERT INTO extents (disk_id, vstart, length, device_id, pstart, flags) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
        params,
      )
    }
  }

  /**
   * Commit a planned change of one disk to SQLite (one transaction, with
   * `extra` statements), then apply it in memory. Returns the new generation.
   */
  async commitChange(disk: DiskRec, change: Change, extra?: () => Promise<void>, opts: { durable?: boolean } = {}): Promise<number> {
    if (isEmpty(change)) {
      // nothing in the table changes: no generation, only the extra statements
      if (extra) await this.db.tx(extra)
      return this.generation
    }
    const t = disk.table
    const old = t.slice(change.start, change.end)
    let gen = 0
    await this.db.tx(async () => {
      await this.db.run('DELETE FROM extents WHERE disk_id = ? AND vstart >= ? AND vstart < ?', [disk.id, change.start, change.end])
      if (change.start > 0) {
        // the extent cut by the change's start keeps its head
        const i = t.find(change.start)
        if (t.vstart(i) < change.start)
          await this.db.run('UPDATE extents SET length = ? WHERE disk_id = ? AND vstart = ?', [
            change.start - t.vstart(i),
            disk.id,
            t.vstart(i),
          ])
      }
      if (change.end < t.size) {
        // the extent cut by the change's end keeps its tail
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
      gen = await this.bumpGeneration()
      await this.db.run('UPDATE disks SET generation = ? WHERE id = ?', [gen, disk.id])
      if (extra) await extra()
    }, opts)
    this.alloc.release(old)
    this.alloc.reserve(change.extents)
    t.apply(change, gen)
    this.generation = gen
    return gen
  }

  /** Insert a new disk with its table's extents (already planned by the allocator). */
  async createDisk(name: string, size: number, thin: boolean, extents: Extent[]): Promise<DiskRec> {
    const createdAt = new Date().toISOString()
    let id = 0
    let gen = 0
    const table = new Table(size, extents, this.generation)
    table.assertInvariant()
    await this.db.tx(async () => {
      gen = await this.bumpGeneration()
      id = (
        await this.db.run('INSERT INTO disks (name, size, thin, generation, created_at) VALUES (?, ?, ?, ?, ?)', [
          name,
          size,
          thin ? 1 : 0,
          gen,
          createdAt,
        ])
      ).lastID
      await this.insertExtents(id, table.all())
    })
    table.generation = gen
    this.alloc.reserve(table.all())
    const disk: DiskRec = { id, name, size, thin, createdAt, table }
    this.disks.set(name, disk)
    this.generation = gen
    return disk
  }

  async deleteDisk(disk: DiskRec): Promise<number> {
    let gen = 0
    await this.db.tx(async () => {
      await this.db.run('DELETE FROM disks WHERE id = ?', [disk.id])
      gen = await this.bumpGeneration()
    })
    this.disks.delete(disk.name)
    this.alloc.release(disk.table.all())
    this.generation = gen
    return gen
  }

  async insertDevice(d: Omit<DeviceRec, 'id'>): Promise<DeviceRec> {
    const r = await this.db.tx(() =>
      this.db.run(
        'INSERT INTO devices (name, path, uuid, kind, size, data_start, health, errors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [d.name, d.path, d.uuid, d.kind, d.size, d.dataStart, d.health, d.errors, d.createdAt],
      ),
    )
    const rec: DeviceRec = { ...d, id: r.lastID }
    this.devices.set(rec.id, rec)
    this.alloc.addDevice(rec.id, rec.dataStart, rec.dataStart + capacity(rec.size))
    return rec
  }

  async deleteDevice(d: DeviceRec): Promise<void> {
    await this.db.tx(() => this.db.run('DELETE FROM devices WHERE id = ?', [d.id]))
    this.devices.delete(d.id)
    this.alloc.removeDevice(d.id)
  }

  /** Disks with extents on a device. */
  usersOf(device: number): string[] {
    const out: string[] = []
    for (const d of this.disks.values()) if (d.table.all().some((e) => e.device === device)) out.push(d.name)
    return out
  }
}
