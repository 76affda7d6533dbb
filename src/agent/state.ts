// The agent's volatile copy of the controller's table: disks, their extent
// tables, and the open devices. Every change arrives from the link in order
// (the link queues them) and is applied under quiesce of its range.
//
// Invariants:
//   * `generation` is the controller generation last applied; a change with a
//     generation not above it is stale and skipped (acked as is);
//   * a table is swapped or changed only while its range is quiesced, so no
//     request sees half an old and half a new mapping;
//   * a disk is its uid: a load or add with the same name but another uid
//     removes the old DiskIO (its open fds get EIO) and makes a new one, so an
//     fd bound to a deleted disk never reaches a new disk of that name;
//   * fenced (an admin forgot this agent): every request fails with EIO, for
//     good, rather than use a table the controller no longer stands behind.

import { VstorError } from '../errors'
import type { ControllerToAgentMethods, DiscardReply, Fault, FaultReply } from '../protocol/messages'
import { onlyWriteProtects, Table } from '../table/table'
import { settleAll, settleChange } from './coherence'
import { DeviceSet, type DeviceOptions } from './devices'
import type { Hurry } from '../hurry'
import { DiskIO, type DiskContext } from './io'
import type { Store } from './store'

type P<M extends keyof ControllerToAgentMethods> = ControllerToAgentMethods[M][0]

/** When a table.update's range was blocked and when the change took effect (performance.now(), ms). */
export interface Applied {
  blockedAt: number
  appliedAt: number
}

export interface StateOptions extends Partial<DeviceOptions> {
  /** Send a fault to the controller (the link). */
  fault(f: Fault): Promise<FaultReply>
  /** Ask the controller for a metadata barrier; resolves with the generation now durable. */
  metaSync?(): Promise<number>
  /** Whether the controller is reachable now. */
  online?(): boolean
  /** Ask the controller to return whole units to the zero state. */
  discard?(p: { disk: string; uid: string; offset: number; length: number }): Promise<DiscardReply>
  /** Where to report trouble that has no caller to answer (the agent log). */
  log?(msg: string): void
  /** The set of missing devices changed (the link tells the controller). */
  onMissing?(uuids: string[]): void
  /** Devices are shared with other hosts (a remote agent): keep this host's page cache honest, see coherence.ts. */
  coherent?: boolean
  /** Follows the ranges where a move's fence holds writes (src/hurry.ts). */
  hurry?: Hurry
}

/** Hooks a front end registers to follow table changes (the libfuse 3 native mapped path). */
export interface TableListener {
  /**
   * Before a change of [start, end) is applied: resolve when no native request (no write, when
   * `writes`: the change keeps every read's answer) is in flight there, and none starts.
   */
  block(disk: DiskIO, start: number, end: number, writes?: boolean): Promise<void>
  /** After it was applied (or the disk's table replaced): pick up the new mapping and let requests in again. */
  applied(disk: DiskIO, start: number, end: number): void
  /** The disk is gone (or the agent fenced): its handles must fail with EIO. */
  removed(disk: DiskIO): void
  /** The set of open devices changed (opened, replaced, closed). */
  devices?(): void
  /** Before an fsync decides: mark the stores written outside DiskIO (disk.markDirty). */
  pull?(disk: DiskIO): void
}

export class AgentState implements DiskContext {
  generation = 0
  /** Every commit up to this generation is durable at the controller. */
  durable = 0
  fenced = false
  readonly disks = new Map<string, DiskIO>()
  readonly devices: DeviceSet
  listener: TableListener | null = null

  constructor(private readonly opts: StateOptions) {
    this.devices = new DeviceSet({
      io: opts.io ?? 'sync',
      scan: opts.scan ?? [],
      ...(opts.open ? { open: opts.open } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    })
  }

  store(device: number): Store | undefined {
    return this.devices.get(device)
  }

  fault(f: Fault): Promise<FaultReply> {
    return this.opts.fault(f)
  }

  get online(): boolean {
    return this.opts.online?.() ?? false
  }

  pullDirty(disk: DiskIO): void {
    this.listener?.pull?.(disk)
  }

  discard(p: { disk: string; uid: string; offset: number; length: number }): Promise<DiscardReply> {
    return this.opts.discard ? this.opts.discard(p) : Promise.resolve({ result: 'write-zeros' })
  }

  async metaSync(): Promise<void> {
    if (!this.opts.metaSync) return
    this.durable = Math.max(this.durable, await this.opts.metaSync())
  }

  /** Replace the whole copy: every disk, every device. */
  async load(p: P<'table.load'>, payload: Buffer | undefined): Promise<void> {
    await this.openDevices(p.devices)
    const buf = payload ?? Buffer.alloc(0)
    let at = 0
    const seen = new Set<string>()
    for (const d of p.disks) {
      const table = Table.fromBuffer(d.size, buf.subarray(at, at + d.bytes), d.generation)
      at += d.bytes
      seen.add(d.name)
      const disk = await this.put(d.name, d.uid, table, !!d.readonly, !!d.sparse)
      // lazily committed changes may be in this table: the next fsync asks for a barrier
      if (p.durable < p.generation) disk.lazyGen = Math.max(disk.lazyGen, p.generation)
    }
    for (const name of [...this.disks.keys()]) if (!seen.has(name)) await this.remove(name)
    if (this.opts.coherent) await settleAll(this.devices.ids().map((id) => this.devices.get(id)!))
    this.devices.retain(p.devices)
    this.listener?.devices?.()
    this.durable = Math.max(this.durable, p.durable)
    this.generation = p.generation
  }

  /**
   * One change to one disk under the per-range blocking protocol. Returns when (performance.now())
   * the range was blocked and the change took effect; null for a change this copy already has.
   */
  async update(p: P<'table.update'>, payload: Buffer | undefined): Promise<Applied | null> {
    if (p.generation <= this.generation) return null
    const disk = this.disks.get(p.disk)
    if (!disk || disk.uid !== p.uid) throw new VstorError('NOT_FOUND', `agent has no disk '${p.disk}' (uid ${p.uid}): send a table.load`)
    if (p.devices) await this.openDevices(p.devices)
    const extents = Table.decodeExtents(payload ?? Buffer.alloc(0))
    if (p.hold) this.opts.hurry?.hold(disk.name, p.start, p.end) // writes wait from the block on
    const blockedAt = performance.now() // quiesce() parks new requests in the range at once
    const before = disk.table.slice(p.start, p.end) // only this queue changes the table
    // a move's fence (no-write over the same places) waits for the writes in flight only
    const writes = onlyWriteProtects(before, extents)
    const release = await disk.gate.quiesce(p.start, p.end, writes)
    try {
      await this.listener?.block(disk, p.start, p.end, writes)
      disk.table.apply({ start: p.start, end: p.end, extents }, p.generation)
      if (this.opts.coherent) await settleChange((id) => this.store(id), before, extents)
      if (p.lazy) disk.lazyGen = Math.max(disk.lazyGen, p.generation)
      this.generation = p.generation
      this.listener?.applied(disk, p.start, p.end)
      if (!p.hold) this.opts.hurry?.release(disk.name, p.start, p.end)
      return { blockedAt, appliedAt: performance.now() }
    } finally {
      release()
    }
  }

  async add(p: P<'disk.add'>, payload: Buffer | undefined): Promise<void> {
    if (p.generation <= this.generation) return
    if (p.devices) await this.openDevices(p.devices)
    await this.put(p.disk, p.uid, Table.fromBuffer(p.size, payload ?? Buffer.alloc(0), p.generation), !!p.readonly, !!p.sparse)
    this.generation = p.generation
  }

  async drop(p: P<'disk.remove'>): Promise<void> {
    if (p.generation <= this.generation) return
    if (this.disks.get(p.disk)?.uid === p.uid) await this.remove(p.disk)
    this.generation = p.generation
  }

  /** A whole new table (a resize, a revert): it replaces the old under a full quiesce; open fds keep working. */
  async replace(p: P<'table.replace'>, payload: Buffer | undefined): Promise<void> {
    if (p.generation <= this.generation) return
    const disk = this.disks.get(p.disk)
    if (!disk || disk.uid !== p.uid) throw new VstorError('NOT_FOUND', `agent has no disk '${p.disk}' (uid ${p.uid}): send a table.load`)
    await this.put(p.disk, p.uid, Table.fromBuffer(p.size, payload ?? Buffer.alloc(0), p.generation), disk.readonly, disk.sparse)
    this.generation = p.generation
  }

  /** An admin forgot this agent: from now on every request fails with EIO. */
  fence(): void {
    this.fenced = true
    for (const d of this.disks.values()) {
      d.removed = true
      this.listener?.removed(d)
    }
  }

  /** fdatasync every store (at shutdown). */
  async syncAll(): Promise<void> {
    await Promise.all(this.devices.ids().map((id) => new Promise<void>((r) => this.devices.get(id)!.sync(() => r()))))
  }

  async closeAll(): Promise<void> {
    this.opts.hurry?.clear()
    await this.devices.closeAll()
    this.listener?.devices?.()
  }

  private async put(name: string, uid: string, table: Table, readonly: boolean, sparse: boolean): Promise<DiskIO> {
    const old = this.disks.get(name)
    this.opts.hurry?.release(name) // a whole new table: no fence of the old one is pending
    if (old && old.uid === uid) {
      const release = await old.gate.quiesce(0, Math.max(old.size, table.size))
      try {
        await this.listener?.block(old, 0, old.size)
        old.table = table
        old.readonly = readonly
        old.sparse = sparse
        this.listener?.applied(old, 0, table.size)
      } finally {
        release()
      }
      return old
    }
    if (old) await this.remove(name)
    const disk = new DiskIO(name, uid, table, this)
    disk.readonly = readonly
    disk.sparse = sparse
    if (this.fenced) disk.removed = true
    this.disks.set(name, disk)
    this.listener?.applied(disk, 0, table.size)
    return disk
  }

  private async remove(name: string): Promise<void> {
    const disk = this.disks.get(name)
    if (!disk) return
    this.disks.delete(name)
    this.opts.hurry?.release(name)
    const release = await disk.gate.quiesce(0, disk.size)
    try {
      await this.listener?.block(disk, 0, disk.size)
      disk.removed = true
      this.listener?.removed(disk)
      if (this.opts.coherent) await settleChange((id) => this.store(id), disk.table.all(), [])
    } finally {
      release()
    }
  }

  private async openDevices(devices: P<'table.load'>['devices']): Promise<void> {
    if (await this.devices.ensure(devices)) this.opts.onMissing?.([...this.devices.missing])
    this.listener?.devices?.()
  }
}
