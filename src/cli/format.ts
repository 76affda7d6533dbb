// Human output for the CLI: aligned tables and words for states. JSON output
// never passes through here; it is the data shapes of protocol/messages.ts
// as they are. Invariant: every function is pure (data in, lines out).

import { formatSize } from '../size'
import type { AgentInfo, DeviceInfo, DiskInfo, DiskMap, JobInfo, MapExtent, Status } from '../protocol/messages'

export type Align = 'left' | 'right'
export interface Column<T> {
  header: string
  get: (row: T) => string
  align?: Align
}

/** Columns separated by two spaces, headers in capitals, numbers right-aligned. */
export function table<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => c.get(r)))
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => (row[i] ?? '').length)))
  const line = (values: string[]): string =>
    values
      .map((v, i) => (columns[i]?.align === 'right' ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')
}

/** Bytes as "10G" or, with --bytes, as the exact integer. */
export function sizer(bytes: boolean): (n: number) => string {
  return bytes ? (n) => String(n) : formatSize
}

export function devicesTable(devices: DeviceInfo[], bytes: boolean): string {
  if (devices.length === 0) return 'no devices (add one with `vstor device add PATH`)'
  const s = sizer(bytes)
  return table(devices, [
    { header: 'NAME', get: (d) => d.name },
    { header: 'PATH', get: (d) => d.path },
    { header: 'KIND', get: (d) => d.kind },
    { header: 'SIZE', get: (d) => s(d.size), align: 'right' },
    { header: 'CAPACITY', get: (d) => s(d.capacity), align: 'right' },
    { header: 'USED', get: (d) => s(d.used), align: 'right' },
    { header: 'FREE', get: (d) => s(d.free), align: 'right' },
    { header: 'QUARANTINED', get: (d) => s(d.quarantined), align: 'right' },
    { header: 'HEALTH', get: (d) => d.health },
    { header: 'STATE', get: (d) => d.state },
    { header: 'ERRORS', get: (d) => String(d.errors), align: 'right' },
  ])
}

export function disksTable(disks: DiskInfo[], bytes: boolean): string {
  if (disks.length === 0) return 'no disks (create one with `vstor disk create NAME --size SIZE`)'
  const s = sizer(bytes)
  return table(disks, [
    { header: 'NAME', get: (d) => d.name },
    { header: 'SIZE', get: (d) => s(d.size), align: 'right' },
    { header: 'ALLOCATED', get: (d) => s(d.allocated), align: 'right' },
    { header: 'EXCLUSIVE', get: (d) => s(d.exclusive), align: 'right' },
    { header: 'SHARED', get: (d) => s(d.shared), align: 'right' },
    { header: 'PROVISIONING', get: (d) => (d.thin ? 'thin' : 'thick') + (d.readonly ? ',read-only' : '') },
    { header: 'ORIGIN', get: (d) => d.origin ?? '-' },
    { header: 'EXTENTS', get: (d) => String(d.extents), align: 'right' },
    { header: 'GENERATION', get: (d) => String(d.generation), align: 'right' },
    { header: 'OPEN BY', get: (d) => (d.openBy.length ? d.openBy.join(',') : '-') },
  ])
}

/** An extent's state as words: "mapped", or its flags ("zero", "no-write,error" …). */
export function stateWords(e: MapExtent): string {
  const words: string[] = []
  if (e.invalid) words.push('invalid')
  if (e.noWrite) words.push('no-write')
  if (e.zero) words.push('zero')
  if (e.error) words.push('error')
  if (e.shared) words.push('shared')
  if (words.length === 0) words.push(e.device === null ? 'unmapped' : 'mapped')
  return words.join(',')
}

export function mapTable(map: DiskMap, bytes: boolean, range?: { start: number; end: number }): string {
  const s = sizer(bytes)
  const extents = range ? map.extents.filter((e) => e.offset < range.end && e.offset + e.length > range.start) : map.extents
  const head = `disk ${map.name}: size ${s(map.size)}, generation ${map.generation}, ${map.extents.length} extent${map.extents.length === 1 ? '' : 's'}`
  return [
    head,
    table(extents, [
      { header: 'OFFSET', get: (e) => s(e.offset), align: 'right' },
      { header: 'LENGTH', get: (e) => s(e.length), align: 'right' },
      { header: 'DEVICE', get: (e) => e.device ?? '-' },
      { header: 'DEVICE OFFSET', get: (e) => (e.deviceOffset === null ? '-' : s(e.deviceOffset)), align: 'right' },
      { header: 'STATE', get: stateWords },
    ]),
  ].join('\n')
}

export function agentsTable(agents: AgentInfo[]): string {
  if (agents.length === 0) return 'no agents (mount one with `vstor mount MOUNTPOINT`)'
  return table(agents, [
    { header: 'ID', get: (a) => a.id },
    { header: 'MOUNTPOINT', get: (a) => a.mountpoint },
    { header: 'PID', get: (a) => String(a.pid), align: 'right' },
    { header: 'STATE', get: (a) => (a.forgotten ? 'forgotten' : a.connected ? 'connected' : `disconnected since ${a.lastSeen}`) },
    { header: 'EPOCH', get: (a) => String(a.epoch), align: 'right' },
    { header: 'GENERATION', get: (a) => String(a.generation), align: 'right' },
    { header: 'REFRESHED', get: (a) => a.refreshedAt ?? 'never' },
    { header: 'FUSE', get: (a) => a.frontend ?? '-' },
    { header: 'OPEN DISKS', get: (a) => (a.openDisks.length ? a.openDisks.join(',') : '-') },
    { header: 'MISSING DEVICES', get: (a) => (a.missingDevices.length ? a.missingDevices.join(',') : '-') },
  ])
}

export function jobsTable(jobs: JobInfo[], bytes: boolean): string {
  if (jobs.length === 0) return 'no jobs'
  const s = sizer(bytes)
  return table(jobs, [
    { header: 'ID', get: (j) => String(j.id), align: 'right' },
    { header: 'KIND', get: (j) => j.kind },
    { header: 'OF', get: (j) => j.disk ?? j.device ?? '-' },
    { header: 'STATE', get: (j) => j.state },
    { header: 'DONE', get: (j) => `${s(j.done)}/${s(j.total)}`, align: 'right' },
    {
      header: 'STALL P50/P99',
      get: (j) => (j.stats.stallP50Ms === null ? '-' : `${j.stats.stallP50Ms}/${j.stats.stallP99Ms} ms`),
      align: 'right',
    },
    { header: 'UPDATED', get: (j) => j.updatedAt },
    { header: 'ERROR', get: (j) => j.error ?? '-' },
  ])
}

export function statusText(st: Status, bytes: boolean): string {
  const c = st.controller
  return [
    `controller ${c.id} (pid ${c.pid}), generation ${c.generation}, protocol ${c.protocol}, up since ${c.startedAt}`,
    `  socket    ${c.socket}`,
    `  data dir  ${c.dataDir}`,
    `  database  ${c.database}`,
    '',
    'AGENTS',
    agentsTable(st.agents),
    '',
    'DISKS',
    disksTable(st.disks, bytes),
    '',
    'DEVICES',
    devicesTable(st.devices, bytes),
  ].join('\n')
}
