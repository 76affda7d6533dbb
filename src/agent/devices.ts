// The agent's open devices, found by their label uuid.
//
// Invariants:
//   * a device is opened only where its label carries the uuid the controller
//     named (the device layer checks it), so a wrong disk at a stale path is
//     never read or written: first at the controller's hint path, else at a
//     path found by scanning this host (`vstor mount --scan GLOB`);
//   * one Store per device id; a device the agent cannot find stays unopened
//     (I/O mapped to it fails with EIO; the next load retries) and is
//     reported as missing;
//   * a store that leaves (no load lists it any more) is closed only after its
//     in-flight requests finished.

import { openDevice, scanLabels, type IoMode } from '../device'
import type { AgentDevice } from '../protocol/messages'
import type { Store } from './store'

export interface DeviceOptions {
  io: IoMode
  /** Globs to scan for labels when a device is not at its hint path. */
  scan: string[]
  /** How to open a device (tests pass memory stores). */
  open?: (dev: AgentDevice) => Promise<Store>
  log?: (msg: string) => void
}

export class DeviceSet {
  private readonly stores = new Map<number, { uuid: string; store: Store }>()
  private scanned: Map<string, string> | null = null
  /** Uuids named by the controller that this agent could not open. */
  readonly missing = new Set<string>()

  constructor(private readonly opts: DeviceOptions) {}

  get(id: number): Store | undefined {
    return this.stores.get(id)?.store
  }

  ids(): number[] {
    return [...this.stores.keys()]
  }

  /** Uuids of labelled devices found by the scan globs (for the hello). */
  async found(): Promise<string[]> {
    this.scanned = await scanLabels(this.opts.scan).catch(() => new Map<string, string>())
    return [...this.scanned.keys()]
  }

  /** Open every listed device not open yet. Returns true when the set of missing devices changed. */
  async ensure(devices: AgentDevice[]): Promise<boolean> {
    const before = [...this.missing].sort().join()
    for (const d of devices) {
      const have = this.stores.get(d.id)
      if (have && have.uuid === d.uuid) {
        this.missing.delete(d.uuid)
        continue
      }
      const store = await this.openOne(d)
      if (!store) {
        this.missing.add(d.uuid)
        continue
      }
      this.missing.delete(d.uuid)
      if (have) void have.store.close()
      this.stores.set(d.id, { uuid: d.uuid, store })
    }
    return before !== [...this.missing].sort().join()
  }

  /** Close the stores no longer listed. */
  retain(devices: AgentDevice[]): void {
    const keep = new Set(devices.map((d) => d.id))
    for (const [id, s] of this.stores) {
      if (keep.has(id)) continue
      this.stores.delete(id)
      void s.store.close()
    }
    const uuids = new Set(devices.map((d) => d.uuid))
    for (const u of this.missing) if (!uuids.has(u)) this.missing.delete(u)
  }

  async closeAll(): Promise<void> {
    const all = [...this.stores.values()]
    this.stores.clear()
    await Promise.all(all.map((s) => s.store.close()))
  }

  private async openOne(d: AgentDevice): Promise<Store | null> {
    if (this.opts.open) {
      return this.opts.open(d).catch((e: Error) => {
        this.opts.log?.(`cannot open device ${d.name}: ${e.message}`)
        return null
      })
    }
    const tried: string[] = []
    const attempt = async (p: string): Promise<Store | null> => {
      try {
        return await openDevice(p, { uuid: d.uuid, mode: this.opts.io })
      } catch (e) {
        tried.push(`${p}: ${(e as Error).message}`)
        return null
      }
    }
    if (d.hint) {
      const s = await attempt(d.hint)
      if (s) return s
    }
    this.scanned ??= await scanLabels(this.opts.scan).catch(() => new Map<string, string>())
    let p = this.scanned.get(d.uuid)
    if (!p) {
      this.scanned = await scanLabels(this.opts.scan).catch(() => new Map<string, string>())
      p = this.scanned.get(d.uuid)
    }
    if (p && p !== d.hint) {
      const s = await attempt(p)
      if (s) return s
    }
    this.opts.log?.(
      `device ${d.name} (uuid ${d.uuid}) is not on this host: ${tried.join('; ') || `no label found under ${this.opts.scan.join(' ')}`}; I/O mapped to it fails with EIO`,
    )
    return null
  }
}
