// Every message that crosses the Unix socket, typed once for all three parts
// (CLI, controller, agent). Transport and framing live in codec.ts and
// connection.ts; this file is the vocabulary.
//
// Wire frame: u32 BE body length | u32 BE header length | header (UTF-8 JSON) | payload (binary, optional)
// Header kinds:
//   {t:'hello', id, protocol, role, agentId?, mountpoint?, pid?}   first frame from a client
//   {t:'req', id, method, params}                                  either side may send requests
//   {t:'res', id, result}  |  {t:'res', id, error:{code,message}}  the answer, same id
//   {t:'note', method, params}                                      no answer expected
// A request's binary payload (a table) rides after the header.

import type { ErrorCode } from '../errors'
import type { StateName } from '../table/table'

export type Role = 'cli' | 'agent'

export interface Hello {
  protocol: number
  role: Role
  agentId?: string
  mountpoint?: string
  pid?: number
  /** The agent's table generation (0 when it has none); the controller reloads it if different. */
  generation?: number
}
export interface HelloReply {
  protocol: number
  controllerId: string
  generation: number
}

export interface WireError {
  code: ErrorCode
  message: string
}

// ---- Data shapes (bytes everywhere) ----
export type DeviceHealth = 'ok' | 'error'
export interface DeviceInfo {
  name: string
  path: string
  uuid: string
  kind: 'file' | 'block'
  size: number // bytes of the whole file or device
  dataStart: number // first byte used for data (after the label area)
  capacity: number // bytes usable for data
  used: number
  free: number
  health: DeviceHealth
  errors: number // device-error faults recorded
}
export interface DiskInfo {
  name: string
  size: number
  allocated: number // bytes mapped to devices
  thin: boolean
  generation: number
  extents: number
  openBy: string[] // agent ids that have the disk open
}
export interface MapExtent {
  offset: number
  length: number
  device: string | null
  deviceOffset: number | null // absolute offset in the backing file or device
  invalid: boolean
  noWrite: boolean
  zero: boolean
  error: boolean
}
export interface DiskMap {
  name: string
  size: number
  generation: number
  extents: MapExtent[]
}
export interface AgentInfo {
  id: string
  mountpoint: string
  pid: number
  connected: boolean
  generation: number
  refreshedAt: string | null // ISO time of the last full table replacement
  openDisks: string[]
}
export interface Status {
  controller: {
    id: string
    pid: number
    socket: string
    dataDir: string
    database: string
    startedAt: string
    generation: number
    protocol: number
  }
  agents: AgentInfo[]
  disks: DiskInfo[]
  devices: DeviceInfo[]
}

/** Device as the agent needs it to open an fd. */
export interface AgentDevice {
  id: number
  name: string
  path: string
}

export type FaultKind = 'unmapped' | 'write-protected' | 'unallocated' | 'device-error'
export interface Fault {
  disk: string
  kind: FaultKind
  offset: number
  length: number
  /** The agent's generation when it saw the fault. */
  generation: number
  device?: number // device-error: which device failed
  errno?: string // device-error: e.g. 'EIO'
}
export interface FaultReply {
  action: 'retry' | 'deny' | 'fail'
  /** Why, for the log ('pool is full' …). */
  reason?: string
}

// ---- Requests: method -> [params, result] ----
export interface CliMethods {
  status: [Record<string, never>, Status]
  'controller.stop': [Record<string, never>, { stopping: true }]
  'device.add': [{ path: string; name?: string }, DeviceInfo]
  'device.list': [Record<string, never>, DeviceInfo[]]
  'device.remove': [{ name: string }, DeviceInfo]
  /** zero: thick only; the controller writes zeros over the new space before it commits the disk (progress notes meanwhile). */
  'disk.create': [{ name: string; size: number; devices?: string[]; thin?: boolean; zero?: boolean }, DiskInfo]
  'disk.list': [Record<string, never>, DiskInfo[]]
  'disk.delete': [{ name: string; force?: boolean }, DiskInfo]
  'disk.map': [{ name: string }, DiskMap]
  'extent.set': [{ name: string; offset: number; length: number; set: StateName[]; clear: StateName[] }, DiskMap]
}
export interface AgentMethods {
  /** Agent -> controller: an I/O could not complete from the table alone. */
  fault: [Fault, FaultReply]
  /** Agent -> controller: ask for a full reload (after a reconnect). */
  'agent.sync': [{ generation: number }, { generation: number }]
  /**
   * Agent -> controller, on fsync of a disk that allocated since its last fsync:
   * make every table commit so far durable (allocations commit without an fsync
   * of their own, as dm-thin commits its metadata on flush).
   */
  'metadata.sync': [Record<string, never>, { generation: number }]
}
/** Controller -> agent requests. Tables ride as the binary payload (Table.encode). */
export interface ControllerToAgentMethods {
  /** Replace the agent's whole copy: every disk. Payload: concatenated encoded tables in `disks` order. */
  'table.load': [
    { generation: number; devices: AgentDevice[]; disks: { name: string; size: number; generation: number; bytes: number }[] },
    { generation: number },
  ]
  /** Apply one change to one disk under the per-range blocking protocol. Payload: encoded extents of the change. */
  'table.update': [
    {
      generation: number
      disk: string
      size: number
      start: number
      end: number
      devices?: AgentDevice[]
      /** The change maps units just allocated from Zero: the agent writes zeros to them (while the range is blocked) before it applies the change, so stale device bytes never show. */
      zeroFill?: boolean
    },
    { generation: number },
  ]
  /** A disk was created (payload: its encoded table). */
  'disk.add': [{ generation: number; disk: string; size: number; devices?: AgentDevice[] }, { generation: number }]
  /** A disk was deleted. */
  'disk.remove': [{ generation: number; disk: string }, { generation: number }]
}
/** Notes (no answer). */
export interface Notes {
  /** Agent -> controller: which disks it has open now (sent on every change). */
  'agent.open': { disks: string[] }
  /** Controller -> CLI, during a long request on that connection (disk.create --zero): bytes done of total. */
  progress: { op: string; done: number; total: number }
}

export type AllMethods = CliMethods & AgentMethods & ControllerToAgentMethods
export type Method = keyof AllMethods
export type Params<M extends Method> = AllMethods[M][0]
export type Result<M extends Method> = AllMethods[M][1]
