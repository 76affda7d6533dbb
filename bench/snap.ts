// Snapshot benchmarks: snapshot time against the number of extents, and the
// copy-on-write fault round trip for a 1 MiB unit.
//
//   * scale: a controller in this process, a 1 TiB thin disk whose table is
//     written straight into SQLite while the controller is stopped (n extents
//     alternating 1 MiB mapped / zero, the mapped ones a unit apart on the
//     device so no reference segments merge), then loaded (the start-time
//     integrity check runs over it), snapshotted and the snapshot deleted a
//     few times, with one agent connected that acks every push;
//   * cow: through the real stack (FUSE, agent, controller process): a thin
//     disk written whole, snapshotted, then one 4k O_DIRECT write into each
//     unit, so every write is a copy-on-write fault of a 1 MiB unit.
//
// Invariants: every server, connection, controller and temp file made here is
// gone when a function returns (also on error); timings are wall time of
// whole requests as a client sees them, median of the runs.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { LABEL_AREA, UNIT } from '../src/config'
import { runController } from '../src/controller/index'
import { Db } from '../src/controller/db'
import { connect, type Connection } from '../src/protocol/connection'
import type { CliMethods, Method, Params, Result } from '../src/protocol/messages'
import { Flag } from '../src/table/table'
import { prefill, runUnitWrites } from './fio'
import { median } from './report'
import { waitFor } from './targets'
import type { Vstor } from './vstor'

const TiB = 2 ** 40

export interface ScalePoint {
  extents: number
  /** Controller start with this table: load + integrity check + WAL checkpoint. */
  loadMs: number
  snapshotMs: number
  snapshotRunsMs: number[]
  deleteMs: number
}
export interface CowResult {
  writes: number
  p50us: number
  p99us: number
  meanUs: number
}

/** Rows of an n-extent table of a disk of `size`: mapped units (2 units apart on the device) and zero gaps. */
function fragmentedRows(n: number, size: number, device: number): (number | null)[][] {
  const mapped = Math.ceil(n / 2)
  const stride = Math.floor(size / mapped / UNIT) * UNIT
  const rows: (number | null)[][] = []
  for (let k = 0; k < mapped; k++) {
    const v = k * stride
    rows.push([v, UNIT, device, LABEL_AREA + 2 * k * UNIT, 0])
    const gapEnd = k === mapped - 1 ? size : (k + 1) * stride
    if (gapEnd > v + UNIT) rows.push([v + UNIT, gapEnd - v - UNIT, null, 0, Flag.Zero])
  }
  return rows
}

/**
 * Replace the table of thin disk `disk` (1 TiB) with n extents on device `device` (LABEL_AREA + (n + 8) units
 * suffice), straight in the database under dataDir: the controller must be stopped.
 */
export async function writeFragmentedTable(dataDir: string, disk: string, device: string, n: number): Promise<void> {
  const db = await Db.open(path.join(dataDir, 'vstor.db'))
  try {
    const d = await db.get<{ id: number; size: number }>('SELECT id, size FROM disks WHERE name = ?', [disk])
    const dev = await db.get<{ id: number }>('SELECT id FROM devices WHERE name = ?', [device])
    if (!d || !dev) throw new Error(`no disk ${disk} or device ${device} in ${dataDir}`)
    const rows = fragmentedRows(n, d.size, dev.id)
    await db.tx(async () => {
      await db.run('DELETE FROM extents WHERE disk_id = ?', [d.id])
      for (let i = 0; i < rows.length; i += 1000) {
        const part = rows.slice(i, i + 1000)
        await db.run(
          `INSERT INTO extents (disk_id, vstart, length, device_id, pstart, flags) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
          part.flatMap((r) => [d.id, ...r]),
        )
      }
    })
  } finally {
    await db.close()
  }
}

class InProcess {
  private running: Promise<void> | null = null
  conn: Connection | null = null
  private agent: Connection | null = null

  constructor(
    readonly socket: string,
    readonly dataDir: string,
  ) {}

  async start(): Promise<number> {
    const t = performance.now()
    this.running = runController({ socket: this.socket, dataDir: this.dataDir })
    this.running.catch(() => undefined)
    if (!(await waitFor(() => fs.existsSync(this.socket), 120_000, 5))) throw new Error('the controller did not start')
    this.conn = (await connect(this.socket, { role: 'cli', pid: process.pid })).conn
    const ms = performance.now() - t
    const { conn } = await connect(this.socket, { role: 'agent', agentId: 'bench', mountpoint: '/bench', pid: process.pid, generation: 0 })
    conn.onRequest(async (_method, params) => ({ generation: (params as { generation: number }).generation }))
    this.agent = conn
    return ms
  }

  call<M extends keyof CliMethods>(method: M, params: Params<M>): Promise<Result<M>> {
    return this.conn!.call(method as Method, params, { timeoutMs: 600_000 }) as Promise<Result<M>>
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.agent?.close()
    await this.call('controller.stop', {}).catch(() => undefined)
    this.conn?.close()
    await this.running
    this.running = null
  }
}

/** Snapshot (and delete) times of a 1 TiB thin disk with n extents. */
async function scalePoint(n: number, runs: number): Promise<ScalePoint> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-bench-snap-'))
  const c = new InProcess(path.join(dir, 'vstor.sock'), path.join(dir, 'data'))
  try {
    const dev = path.join(dir, 'dev.img')
    await fs.promises.writeFile(dev, '')
    await fs.promises.truncate(dev, LABEL_AREA + (n + 8) * UNIT)
    await c.start()
    await c.call('device.add', { path: dev, name: 'd0' })
    await c.call('disk.create', { name: 'big', size: TiB, thin: true })
    await c.stop()
    await writeFragmentedTable(c.dataDir, 'big', 'd0', n)
    const loadMs = await c.start()
    const count = (await c.call('disk.list', {})).find((d) => d.name === 'big')!.extents
    const snaps: number[] = []
    const deletes: number[] = []
    for (let r = 0; r < runs; r++) {
      let t = performance.now()
      await c.call('disk.snapshot', { name: 'big', snapshot: 'snap' })
      snaps.push(performance.now() - t)
      t = performance.now()
      await c.call('disk.delete', { name: 'snap' })
      deletes.push(performance.now() - t)
    }
    return { extents: count, loadMs, snapshotMs: median(snaps), snapshotRunsMs: snaps, deleteMs: median(deletes) }
  } finally {
    await c.stop().catch(() => undefined)
    await fs.promises.rm(dir, { recursive: true, force: true })
  }
}

export async function runSnapshotScale(counts: number[], runs: number): Promise<ScalePoint[]> {
  const out: ScalePoint[] = []
  for (const n of counts) {
    process.stderr.write(`bench: snapshot of a 1 TiB thin disk with ${n} extents…\n`)
    out.push(await scalePoint(n, runs))
  }
  return out
}

/** One 4k O_DIRECT write into each unit of a snapshotted disk: each one copies its 1 MiB unit. */
export async function runCowFaults(vstor: Vstor, count: number): Promise<CowResult> {
  await vstor.recreate('cowrtt', count * UNIT)
  const conn = await vstor.client()
  try {
    await prefill(vstor.image('cowrtt'), count * UNIT)
    await conn.call('disk.snapshot', { name: 'cowrtt', snapshot: 'cowrtt-snap' })
    const r = await runUnitWrites(vstor.image('cowrtt'), count)
    const info = ((await conn.call('disk.list', {})) as { name: string; exclusive: number }[]).find((d) => d.name === 'cowrtt')
    if (info?.exclusive !== count * UNIT) throw new Error(`expected ${count} copied units, the disk has ${info?.exclusive} exclusive bytes`)
    return { writes: r.writes, p50us: r.p50us, p99us: r.p99us, meanUs: r.meanUs }
  } finally {
    await conn.call('disk.delete', { name: 'cowrtt-snap', force: true }).catch(() => undefined)
    await vstor.deleteDisk('cowrtt')
  }
}
