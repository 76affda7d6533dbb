// The agent's volatile copy of the controller's table: disks, their extent
// tables, and the open device stores. Every change arrives from the link in
// order (the link queues them) and is applied under quiesce of its range.
//
// Invariants:
//   * `generation` is the controller generation last applied; a change with
//     a generation not above it is stale and skipped (acked as is);
//   * a table is swapped or changed only while its range is quiesced, so no
//     request sees half an old and half a new mapping;
//   * zero-fill of newly mapped units happens before the change is applied,
//     so stale device bytes never show through;
//   * a store is opened once per device id and closed when no table load
//     lists that device any more.

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { AgentDevice, ControllerToAgentMethods, Fault, FaultReply } from '../protocol/messages'
import { Flag, NO_DEVICE, Table, type Extent } from '../table/table'
import { DiskIO, type DiskContext } from './io'
import { FileStore, type IoMode, type Store } from './store'

type P<M extends keyof ControllerToAgentMethods> = ControllerToAgentMethods[M][0]

export interface StateOptions {
  /** Send a fault to the controller (the link). */
  fault(f: Fault): Promise<FaultReply>
  /** Ask the controller for a metadata barrier (default: nothing to do). */
  metaSync?(): Promise<void>
  /** How to open a device (tests pass memory stores). */
  openStore?(dev: AgentDevice): Promise<Store>
  /** Device I/O mode for FileStores (default async). */
  io?: IoMode
  /** Where to report trouble that has no caller to answer (the agent log). */
  log?(msg: string): void
}

export class AgentState implements DiskContext {
  generation = 0
  readonly disks = new Map<string, DiskIO>()
  private readonly stores = new Map<number, { path: string; store: Store }>()
  private readonly open: (dev: AgentDevice) => Promise<Store>
  private zeros: Buffer | null = null

  constructor(private readonly opts: StateOptions) {
    this.open = opts.openStore ?? ((d) => FileStore.open(d.path, opts.io))
  }

  store(device: number): Store | undefined {
    return this.stores.get(device)?.store
  }

  fault(f: Fault): Promise<FaultReply> {
    return this.opts.fault(f)
  }

  metaSync(): Promise<void> {
    return this.opts.metaSync ? this.opts.metaSync() : Promise.resolve()
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
      await this.put(d.name, table)
    }
    for (const name of [...this.disks.keys()]) if (!seen.has(name)) await this.remove(name)
    const keep = new Set(p.devices.map((d) => d.id))
    for (const [id, s] of this.stores) {
      if (!keep.has(id)) {
        this.stores.delete(id)
        s.store.close()
      }
    }
    this.generation = p.generation
  }

  /** One change to one disk under the per-range blocking protocol. */
  async update(p: P<'table.update'>, payload: Buffer | undefined): Promise<void> {
    if (p.generation <= this.generation) return
    const disk = this.disks.get(p.disk)
    if (!disk) throw new VstorError('NOT_FOUND', `agent has no disk '${p.disk}': send a table.load`)
    if (p.devices) await this.openDevices(p.devices)
    const extents = Table.decodeExtents(payload ?? Buffer.alloc(0))
    const release = await disk.gate.quiesce(p.start, p.end)
    try {
      if (p.zeroFill) await this.zeroFill(disk.table, extents)
      disk.table.apply({ start: p.start, end: p.end, extents }, p.generation)
      this.generation = p.generation
    } finally {
      release()
    }
  }

  async add(p: P<'disk.add'>, payload: Buffer | undefined): Promise<void> {
    if (p.generation <= this.generation) return
    if (p.devices) await this.openDevices(p.devices)
    await this.put(p.disk, Table.fromBuffer(p.size, payload ?? Buffer.alloc(0), p.generation))
    this.generation = p.generation
  }

  async drop(p: P<'disk.remove'>): Promise<void> {
    if (p.generation <= this.generation) return
    await this.remove(p.disk)
    this.generation = p.generation
  }

  /** fdatasync every store (at shutdown). */
  async syncAll(): Promise<void> {
    await Promise.all([...this.stores.values()].map((s) => new Promise<void>((r) => s.store.sync(() => r()))))
  }

  closeAll(): void {
    for (const s of this.stores.values()) s.store.close()
    this.stores.clear()
  }

  private async put(name: string, table: Table): Promise<void> {
    const old = this.disks.get(name)
    if (old && old.size === table.size) {
      const release = await old.gate.quiesce(0, old.size)
      old.table = table
      release()
      return
    }
    if (old) await this.remove(name)
    this.disks.set(name, new DiskIO(name, table, this))
  }

  private async remove(name: string): Promise<void> {
    const disk = this.disks.get(name)
    if (!disk) return
    this.disks.delete(name)
    const release = await disk.gate.quiesce(0, disk.size)
    disk.removed = true
    release()
  }

  private async openDevices(devices: AgentDevice[]): Promise<void> {
    for (const d of devices) {
      const have = this.stores.get(d.id)
      if (have && have.path === d.path) continue
      let store: Store
      try {
        store = await this.open(d)
      } catch (e) {
        // One unopenable device must not stop the agent: I/O mapped to it fails with EIO; the next load retries.
        this.opts.log?.(`cannot open device ${d.name} (${d.path}): ${(e as Error).message}`)
        continue
      }
      if (have) have.store.close()
      this.stores.set(d.id, { path: d.path, store })
    }
  }

  /** Write zeros wherever the change maps units the current table has as Zero. */
  private async zeroFill(current: Table, extents: Extent[]): Promise<void> {
    for (const e of extents) {
      if (e.device === NO_DEVICE || e.flags & (Flag.Zero | Flag.Invalid | Flag.Error)) continue
      const store = this.store(e.device)
      if (!store) throw new VstorError('INTERNAL', `zero-fill: device ${e.device} is not open`)
      for (const old of current.slice(e.vstart, e.vstart + e.length)) {
        if (!(old.flags & Flag.Zero)) continue
        await this.writeZeros(store, e.pstart + (old.vstart - e.vstart), old.length)
      }
    }
  }

  private async writeZeros(store: Store, pos: number, len: number): Promise<void> {
    const zeros = (this.zeros ??= Buffer.alloc(UNIT))
    for (let done = 0; done < len;) {
      const n = Math.min(UNIT, len - done)
      await new Promise<void>((resolve, reject) => store.write(zeros, 0, n, pos + done, (err) => (err ? reject(err) : resolve())))
      done += n
    }
  }
}
