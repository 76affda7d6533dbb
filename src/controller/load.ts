// Loading the model from SQLite, with the start-time integrity check.
//
// Invariants checked (any failure is DB_CORRUPT, never repaired):
//   * every disk's extents tile [0, size) (table invariant);
//   * every mapped byte lies in its device's data area and is mapped by one
//     extent, or by exactly as many as the `shared` table counts for it;
//   * quarantined space is neither mapped nor quarantined twice.
// Free space is what is left; the parts that `dirty` rows cover are dirty.
// A database from before space tracking (space_tracked = 0) has all its
// free space marked dirty once, so it gets scrubbed before anyone reads it.

import { VstorError } from '../errors'
import { NO_DEVICE, Table, type Extent } from '../table/table'
import type { Db } from './db'
import { capacity, spansOf, State, type DeviceRec } from './state'
import { Refs } from './refs'
import { checkShared, sharedRows } from './shares'

interface ExtentRow {
  disk_id: number
  vstart: number
  length: number
  device_id: number | null
  pstart: number
  flags: number
}
type Row = Record<string, string | number | null>

export async function loadState(db: Db): Promise<State> {
  const s = new State(db)
  const meta = new Map((await db.all<{ key: string; value: string }>('SELECT key, value FROM meta')).map((r) => [r.key, r.value]))
  s.controllerId = meta.get('controller_id') ?? ''
  s.generation = Number(meta.get('generation') ?? 0)
  const corrupt = (why: string) =>
    new VstorError('DB_CORRUPT', `database ${db.file} is inconsistent (${why}): restore it from backup (see vstor-controller(8))`)

  for (const r of await db.all<Row>('SELECT * FROM devices ORDER BY id')) {
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
      state: r.state === 'evacuating' || r.state === 'evacuated' ? r.state : 'active',
    }
    s.devices.set(d.id, d)
    s.alloc.addDevice(d.id, d.dataStart, d.dataStart + capacity(d.size), false)
  }

  const byDisk = new Map<number, Extent[]>()
  for (const r of await db.all<ExtentRow>('SELECT * FROM extents ORDER BY disk_id, vstart')) {
    const e: Extent = { vstart: r.vstart, length: r.length, device: r.device_id ?? NO_DEVICE, pstart: r.pstart, flags: r.flags }
    let list = byDisk.get(r.disk_id)
    if (!list) byDisk.set(r.disk_id, (list = []))
    list.push(e)
  }
  for (const r of await db.all<Row>('SELECT * FROM disks ORDER BY id')) {
    const id = Number(r.id)
    let table: Table
    try {
      table = new Table(Number(r.size), byDisk.get(id) ?? [], Number(r.generation))
      table.assertInvariant()
    } catch (e) {
      throw corrupt(`disk ${String(r.name)}: ${(e as Error).message}`)
    }
    s.disks.set(String(r.name), {
      id,
      uid: String(r.uid),
      name: String(r.name),
      size: Number(r.size),
      thin: Number(r.thin) !== 0,
      createdAt: String(r.created_at),
      table,
      origin: r.origin === null || r.origin === undefined ? null : String(r.origin),
      readonly: Number(r.readonly) !== 0,
      devices: typeof r.devices === 'string' ? (JSON.parse(r.devices) as number[]) : null,
    })
  }

  // Mapped space: each physical range once, with sharing only where `shared` counts it.
  let mapped
  try {
    mapped = await checkShared(
      db,
      [...s.disks.values()].flatMap((d) => spansOf(d.table.all())),
    )
    s.alloc.takeSorted(mapped) // sorted and merged by checkShared
    s.refs = Refs.from(await sharedRows(db))
  } catch (e) {
    if (e instanceof VstorError && e.code === 'DB_CORRUPT') throw e
    throw corrupt(`extents overlap on a device or lie outside it: ${(e as Error).message}`)
  }
  const rows = await db.all<Row>('SELECT * FROM quarantine ORDER BY device_id, pstart')
  const quarantine = rows.map((r) => ({
    device: Number(r.device_id),
    pstart: Number(r.pstart),
    length: Number(r.length),
    generation: Number(r.generation),
  }))
  try {
    s.alloc.takeSorted(quarantine)
  } catch (e) {
    throw corrupt(`quarantined space is also in use: ${(e as Error).message}`)
  }
  s.quarantine = quarantine.sort((a, b) => a.generation - b.generation)
  if (meta.get('space_tracked') !== '1') await markAllFreeDirty(s)
  for (const r of await db.all<Row>('SELECT * FROM dirty')) {
    const dev = Number(r.device_id)
    const start = Number(r.pstart)
    s.alloc.markDirty(dev, start, start + Number(r.length))
  }
  return s
}

/** Space of a database from before tracking: unknown contents, so dirty. */
async function markAllFreeDirty(s: State): Promise<void> {
  await s.db.tx(async () => {
    await s.db.run('DELETE FROM dirty')
    for (const d of s.devices.values()) {
      for (const r of s.alloc.clean.runs(d.id))
        await s.db.run('INSERT INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [d.id, r.start, r.end - r.start])
    }
    await s.db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('space_tracked', '1')")
  })
}
