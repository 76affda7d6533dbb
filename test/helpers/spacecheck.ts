// Space accounting straight from the controller's SQLite tables, computed
// independently of src/controller (its own sweep, its own queries), for tests
// that crash or restart the controller around shared extents.
//
// Invariants checked (each violation is one line in `problems`):
//   * every mapped byte lies in its device's data area and is mapped by
//     exactly as many extents as the `shared` row there says (1 when no row);
//     a `shared` row over bytes fewer extents map is a leak of a reference;
//   * quarantined bytes are mapped by no extent and quarantined once;
//     dirty rows lie in the data area and cover no mapped byte;
//   * clean free space (neither mapped, quarantined nor dirty) reads zeros on
//     the device (checked when the device files are readable here): the
//     allocator hands it out without zeroing;
//   * with the controller's live `device list` (checkAgainstList):
//     free + mapped + quarantined = capacity per device, and the quarantined
//     bytes it reports are the rows' bytes.
// The file is opened read-only: a `vstor controller backup` copy, or vstor.db
// after the controller stopped.

import fs from 'node:fs'
import sqlite3 from 'sqlite3'
import { LABEL_AREA, UNIT } from '../../src/config'
import type { DeviceInfo } from '../../src/protocol/messages'

export interface DeviceSpace {
  id: number
  name: string
  dataStart: number
  capacity: number
  /** Bytes mapped by at least one extent (each byte once). */
  mapped: number
  /** Bytes mapped by two or more extents. */
  shared: number
  quarantined: number
}
export interface SpaceReport {
  devices: DeviceSpace[]
  problems: string[]
}

type Row = Record<string, number | string | null>

function all(db: sqlite3.Database, sql: string): Promise<Row[]> {
  return new Promise((resolve, reject) => db.all(sql, (err: Error | null, rows: Row[]) => (err ? reject(err) : resolve(rows))))
}

interface Edge {
  at: number
  d: number
}

/** Maximal runs [start, end) with their count (> 0) from +1/-1 edges. */
function sweep(edges: Edge[]): { start: number; end: number; count: number }[] {
  edges.sort((a, b) => a.at - b.at)
  const out: { start: number; end: number; count: number }[] = []
  let count = 0
  for (let i = 0; i < edges.length;) {
    const at = edges[i]!.at
    while (i < edges.length && edges[i]!.at === at) count += edges[i++]!.d
    const next = edges[i]?.at
    if (next === undefined || next === at) continue
    const last = out[out.length - 1]
    if (count > 0) {
      if (last && last.end === at && last.count === count) last.end = next
      else out.push({ start: at, end: next, count })
    }
  }
  return out
}

/** Read the tables of a vstor database file and check how its space is accounted. */
export async function checkDbFile(file: string): Promise<SpaceReport> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const d = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(d)))
  })
  try {
    const devs = await all(db, 'SELECT id, name, path, size, data_start FROM devices ORDER BY id')
    const extents = await all(db, 'SELECT disk_id, vstart, device_id, pstart, length FROM extents WHERE device_id IS NOT NULL')
    const shared = await all(db, 'SELECT device_id, pstart, length, refs FROM shared')
    const quarantine = await all(db, 'SELECT device_id, pstart, length FROM quarantine')
    const dirty = await all(db, 'SELECT device_id, pstart, length FROM dirty')
    const problems: string[] = []
    const out: DeviceSpace[] = []
    for (const dv of devs) {
      const id = Number(dv.id)
      const dataStart = Number(dv.data_start)
      const capacity = Math.max(0, Math.floor((Number(dv.size) - LABEL_AREA) / UNIT) * UNIT)
      const end = dataStart + capacity
      const mine = (rows: Row[]) => rows.filter((r) => Number(r.device_id) === id)
      const name = String(dv.name)
      const inArea = (what: string, s: number, l: number) => {
        if (l <= 0 || s < dataStart || s + l > end)
          problems.push(`${name}: ${what} [${s}, ${s + l}) is outside the data area [${dataStart}, ${end})`)
      }
      // extent coverage, with the shared rows as -refs edges: where they agree the net count is 0 or 1
      const cover = sweep(
        mine(extents).flatMap((e) => {
          inArea(`extent of disk #${String(e.disk_id)} at ${String(e.vstart)}`, Number(e.pstart), Number(e.length))
          return [
            { at: Number(e.pstart), d: 1 },
            { at: Number(e.pstart) + Number(e.length), d: -1 },
          ]
        }),
      )
      const rows = mine(shared)
      for (const r of rows)
        if (Number(r.refs) < 2) problems.push(`${name}: shared row at ${String(r.pstart)} counts ${String(r.refs)} (< 2)`)
      const rowRuns = sweep(
        rows.flatMap((r) => [
          { at: Number(r.pstart), d: Number(r.refs) },
          { at: Number(r.pstart) + Number(r.length), d: -Number(r.refs) },
        ]),
      )
      // compare per elementary interval: extents vs. (row refs, or 1 when no row)
      const points = [...new Set([...cover, ...rowRuns].flatMap((c) => [c.start, c.end]))].sort((a, b) => a - b)
      const at = (runs: { start: number; end: number; count: number }[], x: number) =>
        runs.find((c) => c.start <= x && x < c.end)?.count ?? 0
      let mapped = 0
      let multi = 0
      for (let i = 0; i + 1 < points.length; i++) {
        const a = points[i]!
        const b = points[i + 1]!
        const n = at(cover, a)
        const refs = at(rowRuns, a)
        if (n > 0) mapped += b - a
        if (n > 1) multi += b - a
        const want = refs === 0 ? Math.min(n, 1) : refs
        if (n !== want || (refs > 0 && n < 2))
          problems.push(`${name}: [${a}, ${b}) is mapped by ${n} extent(s) but the shared table says ${refs || '(no row)'}`)
      }
      const inCover = (s: number, l: number) => cover.some((c) => c.start < s + l && s < c.end)
      const q = sweep(
        mine(quarantine)
          .map((r) => [
            { at: Number(r.pstart), d: 1 },
            { at: Number(r.pstart) + Number(r.length), d: -1 },
          ])
          .flat(),
      )
      let quarantined = 0
      for (const c of q) {
        quarantined += (c.end - c.start) * c.count
        inArea('quarantined span', c.start, c.end - c.start)
        if (c.count > 1) problems.push(`${name}: [${c.start}, ${c.end}) is quarantined ${c.count} times`)
        if (inCover(c.start, c.end - c.start)) problems.push(`${name}: quarantined [${c.start}, ${c.end}) is also mapped`)
      }
      for (const r of mine(dirty)) {
        const s = Number(r.pstart)
        const l = Number(r.length)
        inArea('dirty row', s, l)
        if (inCover(s, l)) problems.push(`${name}: dirty row [${s}, ${s + l}) covers mapped space`)
      }
      const used = sweep(
        [
          ...cover,
          ...q,
          ...sweep(
            mine(dirty).flatMap((r) => [
              { at: Number(r.pstart), d: 1 },
              { at: Number(r.pstart) + Number(r.length), d: -1 },
            ]),
          ),
        ].flatMap((c) => [
          { at: c.start, d: 1 },
          { at: c.end, d: -1 },
        ]),
      )
      problems.push(...(await cleanReadsZeros(name, String(dv.path), dataStart, end, used)))
      out.push({ id, name, dataStart, capacity, mapped, shared: multi, quarantined })
    }
    const known = new Set(devs.map((d) => Number(d.id)))
    for (const r of [...extents, ...shared, ...quarantine])
      if (!known.has(Number(r.device_id))) problems.push(`a row names device #${String(r.device_id)}, which is not in the pool`)
    return { devices: out, problems }
  } finally {
    await new Promise<void>((r) => db.close(() => r()))
  }
}

/** The gaps between `used` runs inside [start, end) must read zeros in the device file. */
async function cleanReadsZeros(
  name: string,
  file: string,
  start: number,
  end: number,
  used: { start: number; end: number }[],
): Promise<string[]> {
  const fh = await fs.promises.open(file, 'r').catch(() => null)
  if (!fh) return []
  const bad: string[] = []
  const buf = Buffer.alloc(UNIT)
  const zeros = Buffer.alloc(UNIT)
  try {
    let pos = start
    for (const u of [...used, { start: end, end }]) {
      for (let at = pos; at < Math.min(u.start, end); at += UNIT) {
        const n = Math.min(UNIT, u.start - at)
        const { bytesRead } = await fh.read(buf, 0, n, at)
        if (bytesRead === n && !buf.subarray(0, n).equals(zeros.subarray(0, n))) {
          bad.push(`${name}: clean free space [${at}, ${at + n}) does not read zeros`)
          if (bad.length >= 5) return bad
        }
      }
      pos = Math.max(pos, u.end)
    }
  } finally {
    await fh.close()
  }
  return bad
}

/** The live allocator against the tables: free + mapped + quarantined = capacity, quarantine agrees. */
export function checkAgainstList(report: SpaceReport, list: DeviceInfo[]): string[] {
  const problems: string[] = []
  for (const d of report.devices) {
    const live = list.find((x) => x.name === d.name)
    if (!live) {
      problems.push(`device ${d.name} is in the database but not in device list`)
      continue
    }
    if (live.capacity !== d.capacity) problems.push(`${d.name}: capacity ${live.capacity} listed, ${d.capacity} from its size`)
    if (live.free + d.mapped + d.quarantined !== d.capacity)
      problems.push(`${d.name}: free ${live.free} + mapped ${d.mapped} + quarantined ${d.quarantined} != capacity ${d.capacity}`)
    if (live.quarantined !== d.quarantined)
      problems.push(`${d.name}: ${live.quarantined} quarantined listed, ${d.quarantined} in the table`)
  }
  return problems
}
