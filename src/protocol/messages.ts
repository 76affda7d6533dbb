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
  /** The epoch the controller gave this agent process at its first hello (absent on a fresh start). A stale one is refused (fencing). */
  epoch?: number
  /** Label uuids of the devices this agent found on its host. */
  devices?: string[]
  /** The FUSE front end in use (libfuse3 | fuse-native). */
  frontend?: string
  /** The controller run (boot) the agent's table came from: another run always reloads it. */
  boot?: number
}
export interface HelloReply {
  protocol: number
  controllerId: string
  generation: number
  /** Agents: the epoch to present on every reconnect of this process. */
  epoch?: number
  /** This controller run: rises at every start, so an agent never mistakes another run's generation for its own. */
  boot?: number
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
  used: number // capacity - free: mapped, quarantined and being scrubbed
  free: number // clean + dirty free space: what new allocations can use
  quarantined: number // freed, waiting for every agent to apply the change that freed it
  scrubbing: number // free, not yet zeroed by the scrubber (zeroed before anyone maps it)
  health: DeviceHealth
  state: 'active' | 'evacuating' | 'evacuated'
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
  origin: string | null // the disk it was snapshotted or cloned from (null: none, or deleted since)
  readonly: boolean // a snapshot: writes are EROFS
  exclusive: number // mapped bytes no other disk maps: what deleting it would free
  shared: number // mapped bytes other disks map too (snapshots, clones)
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
  shared: boolean // other disks map these bytes too: the first write copies them
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
  generation: number // the last generation it acked
  refreshedAt: string | null // ISO time of the last full table replacement
  openDisks: string[] // as last reported; kept while disconnected (its fds may still be open)
  epoch: number
  lastSeen: string // ISO time it was last connected
  frontend: string | null
  missingDevices: string[] // names of pool devices this agent could not find on its host
  forgotten: boolean // an admin declared it gone: its acks no longer count, it is refused if it comes back
}
export type JobState = 'running' | 'done' | 'failed' | 'cancelled'
export interface JobInfo {
  id: number
  kind: 'move' | 'evacuate'
  disk: string | null
  device: string | null
  state: JobState
  done: number // bytes
  total: number // bytes
  error: string | null
  createdAt: string
  updatedAt: string
  /** Per-chunk stall (writes held) in ms, and copy throughput, as measured so far. */
  stats: { chunks: number; stallP50Ms: number | null; stallP99Ms: number | null; copyMBps: number | null }
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

/** A device as the controller names it to agents: by label uuid; `hint` is a path to try first (the label is checked). */
export interface AgentDevice {
  id: number
  name: string
  uuid: string
  hint?: string
}
/** A disk in a table.load: `uid` is its identity (a re-created disk of the same name has another). */
export interface LoadDisk {
  name: string
  uid: string
  size: number
  generation: number
  bytes: number
  readonly?: boolean
  /** Units may return to the zero state (thin disks and clones): discards and zero writes give space back. */
  sparse?: boolean
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
  /** The errno the I/O gets on deny/fail (default: EROFS for deny, ENOSPC for fail). */
  errno?: 'ENOSPC' | 'EIO' | 'EROFS'
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
  'disk.resize': [{ name: string; size: number; shrink?: boolean }, DiskInfo]
  'disk.snapshot': [{ name: string; snapshot: string }, DiskInfo]
  'disk.clone': [{ source: string; name: string }, DiskInfo]
  'disk.revert': [{ name: string; to: string }, DiskInfo]
  'disk.move': [{ name: string; to: string; offset?: number; length?: number }, JobInfo]
  'device.evacuate': [{ name: string; to?: string[] }, JobInfo]
  /** Re-read the label, test I/O, clear health=error when the device works. */
  'device.check': [{ name: string }, DeviceInfo]
  'controller.backup': [{ path: string }, { path: string; bytes: number }]
  'agent.list': [Record<string, never>, AgentInfo[]]
  /** Declare an agent gone for good: its epoch rises (it is refused if it comes back), its holds are dropped. */
  'agent.forget': [{ id: string }, AgentInfo]
  'job.list': [Record<string, never>, JobInfo[]]
  'job.get': [{ id: number }, JobInfo]
  /** Answer when the job has ended; progress notes meanwhile. */
  'job.wait': [{ id: number }, JobInfo]
  'job.cancel': [{ id: number }, JobInfo]
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
  /** Agent -> controller on a clean unmount: nothing of it is left (no fds, no table); drop its record. */
  'agent.bye': [Record<string, never>, Record<string, never>]
  /**
   * Agent -> controller: whole units of [offset, offset+length) were discarded (fallocate punch/zero
   * range, or a whole unit written with zeros) on a sparse disk: return them to the zero state. The
   * answer comes once every agent applied it. 'write-zeros': a thick disk, write zeros instead.
   */
  discard: [{ disk: string; uid: string; offset: number; length: number }, DiscardReply]
}
export interface DiscardReply {
  result: 'discarded' | 'write-zeros' | 'denied'
  errno?: 'EROFS' | 'EIO'
  reason?: string
}
/**
 * An agent's answer to every pushed change. served: requests it has served so far, all disks
 * (monotonic; tells background jobs about foreground I/O). written: writes it finished so far, all
 * disks, each counted before it left its range (so the ack of a change that quiesced a range counts
 * every write that was in it). blockedAt, appliedAt (table.update only): the agent's monotonic
 * clock in ms (its own origin: compare only two of one agent's acks) when the change's range was
 * blocked (new requests there wait from then) and when the change took effect, so a move measures
 * how long writes were held where they were held.
 */
export interface PushAck {
  generation: number
  served?: number
  written?: number
  blockedAt?: number
  appliedAt?: number
}
/** Controller -> agent requests. Tables ride as the binary payload (Table.encode). */
export interface ControllerToAgentMethods {
  /** Replace the agent's whole copy: every disk. Payload: concatenated encoded tables in `disks` order. */
  'table.load': [
    {
      generation: number
      /** Every commit up to this generation is durable (fsync needs no metadata.sync for them). */
      durable: number
      devices: AgentDevice[]
      disks: LoadDisk[]
    },
    PushAck,
  ]
  /** Apply one change to one disk under the per-range blocking protocol. Payload: encoded extents of the change. */
  'table.update': [
    {
      generation: number
      disk: string
      uid: string
      size: number
      start: number
      end: number
      devices?: AgentDevice[]
      /** Committed without fsync: an fsync of this disk asks for metadata.sync first. */
      lazy?: boolean
      /** A move's fence: writes to the range now wait for a change that follows shortly (the agent hurries until then). */
      hold?: boolean
    },
    PushAck,
  ]
  /** A disk was created (payload: its encoded table). */
  'disk.add': [
    { generation: number; disk: string; uid: string; size: number; readonly?: boolean; sparse?: boolean; devices?: AgentDevice[] },
    PushAck,
  ]
  /** A disk was deleted: open fds of it get EIO. */
  'disk.remove': [{ generation: number; disk: string; uid: string }, PushAck]
  /** A disk's whole table changed (resize, revert): the new table is the payload; open fds keep working. */
  'table.replace': [{ generation: number; disk: string; uid: string; size: number }, PushAck]
}
/** Notes (no answer). */
export interface Notes {
  /** Agent -> controller: which disks it has open now (sent on every change and on every connect). */
  'agent.open': { disks: string[] }
  /** Agent -> controller: label uuids of pool devices it could not find on its host (sent when that changes). */
  'agent.devices': { missing: string[] }
  /** Controller -> CLI, during a long request on that connection (disk.create, job.wait): bytes done of total. */
  progress: { op: string; done: number; total: number }
}

export type AllMethods = CliMethods & AgentMethods & ControllerToAgentMethods
export type Method = keyof AllMethods
export type Params<M extends Method> = AllMethods[M][0]
export type Result<M extends Method> = AllMethods[M][1]
