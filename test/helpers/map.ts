// Reading a disk's bytes straight from its backing files, through the map the
// CLI prints (`disk map --json`), to check where the agent really wrote.
//
// Invariant: a MapExtent's deviceOffset is absolute in the backing file (the
// 1 MiB label area included), so disk byte `o` inside extent `e` lives at
// e.deviceOffset + (o - e.offset) of the device named e.device.

import fs from 'node:fs'
import type { DeviceInfo, DiskMap, MapExtent } from '../../src/protocol/messages'

export interface Piece {
  diskOffset: number
  length: number
  extent: MapExtent
  /** Backing file path and absolute offset, or null for a range with no device. */
  path: string | null
  deviceOffset: number | null
}

/** Split [offset, offset+length) of a disk into pieces along its map's extents. */
export function pieces(map: DiskMap, devices: DeviceInfo[], offset: number, length: number): Piece[] {
  const out: Piece[] = []
  const end = offset + length
  for (const e of map.extents) {
    const s = Math.max(offset, e.offset)
    const t = Math.min(end, e.offset + e.length)
    if (s >= t) continue
    const dev = e.device === null ? undefined : devices.find((d) => d.name === e.device)
    if (e.device !== null && !dev) throw new Error(`map names device ${e.device} that device list does not have`)
    out.push({
      diskOffset: s,
      length: t - s,
      extent: e,
      path: dev ? dev.path : null,
      deviceOffset: e.deviceOffset === null ? null : e.deviceOffset + (s - e.offset),
    })
  }
  return out
}

/** The bytes of a disk range as stored on its devices (zeros for device-less pieces). */
export function backingBytes(map: DiskMap, devices: DeviceInfo[], offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length)
  for (const p of pieces(map, devices, offset, length)) {
    if (p.path === null || p.deviceOffset === null) continue
    const fd = fs.openSync(p.path, 'r')
    try {
      fs.readSync(fd, buf, p.diskOffset - offset, p.length, p.deviceOffset)
    } finally {
      fs.closeSync(fd)
    }
  }
  return buf
}

/** Check the map tiles the disk: sorted, gap-free, ending at size. Returns a problem or ''. */
export function mapProblem(map: DiskMap): string {
  let at = 0
  for (const e of map.extents) {
    if (e.offset !== at) return `extent at ${e.offset} but previous ended at ${at}`
    if (e.length <= 0) return `extent at ${e.offset} has length ${e.length}`
    at += e.length
  }
  return at === map.size ? '' : `extents end at ${at}, disk size is ${map.size}`
}

/** Pairs of extents (from several maps) that overlap on the same device; empty when none do. */
export function deviceOverlaps(maps: DiskMap[]): string[] {
  const byDev = new Map<string, { s: number; e: number; who: string }[]>()
  for (const m of maps) {
    for (const x of m.extents) {
      if (x.device === null || x.deviceOffset === null) continue
      const list = byDev.get(x.device) ?? []
      list.push({ s: x.deviceOffset, e: x.deviceOffset + x.length, who: `${m.name}@${x.offset}` })
      byDev.set(x.device, list)
    }
  }
  const bad: string[] = []
  for (const [dev, list] of byDev) {
    list.sort((a, b) => a.s - b.s)
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1]
      const b = list[i]
      if (a && b && b.s < a.e) bad.push(`${dev}: ${a.who} [${a.s},${a.e}) overlaps ${b.who} [${b.s},${b.e})`)
    }
  }
  return bad
}

/** Extent edges inside the disk (offsets where one extent ends and the next starts). */
export function edges(map: DiskMap): number[] {
  return map.extents.slice(1).map((e) => e.offset)
}
