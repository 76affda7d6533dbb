// The native mapped path's JS half: keeps the addon's copy of each disk's plainly mapped extents
// in step with the agent's tables (AgentState's TableListener hooks), so libfuse 3 worker threads
// serve those reads and writes with pread/pwrite and everything else still comes to DiskIO.
//
// Invariants:
//   * blocking protocol: block() is called while the JS gate has the range quiesced; the addon then
//     admits no new native request there (they come to JS and park in the gate) and block()
//     resolves once none (no write, for a change that keeps every read's answer) is in flight
//     (EV_UNBLOCKED; never by waiting on a worker); applied() loads
//     the new mapping of the range and lifts the block; removed() sends the disk's fds to JS (EIO);
//   * only extents with no flags (read/write) or only NoWrite/Shared (read only) and a device go to
//     C; devices are handed over as their Device fd (the addon keeps a dup), kept in step with
//     the agent's open devices by devices();
//   * before the session exists (mount not called yet) every hook is a no-op except that ranges
//     between block() and applied() are remembered and blocked at attach, so a change under way
//     then is never served from a stale mapping;
//   * after the FUSE loop ended (or with the path disabled) every hook resolves at once.

import os from 'node:os'
import { NO_DEVICE, WRITE_PROTECTED } from '../../table/table'
import type { DiskIO } from '../io'
import type { AgentState, TableListener } from '../state'
import type { Store } from '../store'
import { F, OP, type NativeStats } from './fuse3-abi'
import type { Fuse3, NativeSession } from './fuse3'

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([k, v]) => [v, k]))
/** Flags a native extent may carry: reads only. */
const READ_ONLY = WRITE_PROTECTED as number

const fdOf = (s: Store | undefined): number => {
  const fd = (s as { fd?: unknown } | undefined)?.fd
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1
}

interface Span {
  start: number
  end: number
}

export class NativeMap implements TableListener {
  private session: NativeSession | null = null
  /** The session attached last (its counters outlive it). */
  private last: NativeSession | null = null
  private ended = false
  private nextId = 1
  private readonly ids = new WeakMap<DiskIO, number>()
  private readonly byId = new Map<number, DiskIO>()
  /** Device id → the store whose fd the addon holds. */
  private readonly devs = new Map<number, Store>()
  /** Blocks set in the addon and not lifted yet, per disk (a change whose apply failed leaves one). */
  private readonly blocks = new Map<DiskIO, number[]>()
  /** Before attach: ranges between block() and applied(). */
  private readonly changing = new Map<DiskIO, Span[]>()
  private readonly waits = new Map<number, () => void>()

  constructor(
    private readonly state: AgentState,
    private readonly enabled = true,
  ) {}

  /** Serve through fuse's session from now on (call right after fuse.mount()). */
  attach(fuse: Fuse3): boolean {
    if (!this.enabled || this.ended || this.session) return false
    const s = fuse.attachNative({ onEvent: (op, d, o) => this.onEvent(op, d, o), onEnded: () => this.onEnded() })
    if (!s) return false
    this.session = this.last = s
    this.devices()
    for (const disk of this.state.disks.values()) {
      if (disk.removed) continue
      this.applied(disk, 0, disk.size)
      for (const r of this.changing.get(disk) ?? []) {
        const id = s.addon.mapBlock(s.h, this.idOf(disk), r.start, r.end)
        if (id !== 0) this.blocksOf(disk).push(Math.abs(id)) // nothing can be in flight yet
      }
    }
    this.changing.clear()
    return true
  }

  /** The native path's counters (null when it never ran); they stay readable after the FUSE loop ended. */
  stats(): Partial<NativeStats> | null {
    const s = this.last
    return s ? s.addon.mapStats(s.h) : null
  }

  /** Requests the native path answered (0 when it never ran); lock-free, for every table.update ack. */
  served(): number {
    const s = this.last
    return s ? s.addon.mapServed(s.h) : 0
  }

  /**
   * Writes the native path finished (0 when it never ran); counted before a table change waiting
   * for one goes on. Null when the addon cannot count them (an older build): then nobody may
   * conclude that nothing was written.
   */
  written(): number | null {
    const s = this.last
    if (!s) return 0
    return typeof s.addon.mapWritten === 'function' ? s.addon.mapWritten(s.h) : null
  }

  block(disk: DiskIO, start: number, end: number, writes = false): Promise<void> {
    const s = this.session
    if (!s) {
      if (!this.ended && this.enabled) this.changingOf(disk).push({ start, end })
      return Promise.resolve()
    }
    const did = this.ids.get(disk)
    if (did === undefined) return Promise.resolve() // never loaded: nothing native there
    const id = s.addon.mapBlock(s.h, did, start, end, writes)
    if (id === 0) return Promise.resolve()
    this.blocksOf(disk).push(Math.abs(id))
    if (id < 0) return Promise.resolve()
    return new Promise((resolve) => this.waits.set(id, resolve))
  }

  applied(disk: DiskIO, start: number, end: number): void {
    const s = this.session
    if (!s || disk.removed) {
      this.changing.get(disk)?.shift()
      return
    }
    const did = this.idOf(disk)
    const t = disk.table
    s.addon.mapDisk(s.h, did, t.size, disk.readonly, disk.sparse)
    // Whole extents around [start, end): the table may have merged the change with its neighbours.
    const a = Math.min(Math.max(start, 0), t.size - 1)
    const b = Math.min(Math.max(end, a + 1), t.size)
    const first = t.find(a)
    const last = t.find(b - 1)
    const lo = t.vstart(first)
    const hi = t.end(last)
    const out = new Float64Array((last - first + 1) * 5)
    let n = 0
    for (let i = first; i <= last; i++) {
      const flags = t.flags(i)
      const dev = t.device(i)
      if (dev === NO_DEVICE || (flags & ~READ_ONLY) !== 0) continue
      const at = n++ * 5
      out[at] = t.vstart(i)
      out[at + 1] = t.end(i)
      out[at + 2] = t.pstart(i)
      out[at + 3] = dev
      out[at + 4] = flags & READ_ONLY ? 1 : 0
    }
    const pending = this.blocks.get(disk) ?? []
    this.blocks.delete(disk)
    if (!s.addon.mapApply(s.h, did, lo, hi, out, n, pending.pop() ?? 0)) return // no memory: the range stays with JS
    for (const id of pending) s.addon.mapUnblock(s.h, did, id) // a change that failed before apply
  }

  removed(disk: DiskIO): void {
    this.blocks.delete(disk)
    this.changing.delete(disk)
    const s = this.session
    const did = this.ids.get(disk)
    if (did === undefined) return
    this.byId.delete(did)
    if (s) s.addon.mapRemove(s.h, did)
  }

  /** Hand the addon the fd of every open device; forget closed or replaced ones. */
  devices(): void {
    const s = this.session
    if (!s) return
    const live = new Set(this.state.devices.ids())
    for (const [id, store] of this.devs) {
      if (live.has(id) && this.state.store(id) === store && fdOf(store) >= 0) continue
      s.addon.mapDevice(s.h, id, -1)
      this.devs.delete(id)
    }
    for (const id of live) {
      const store = this.state.store(id)
      if (!store || this.devs.get(id) === store) continue
      const fd = fdOf(store)
      if (fd >= 0 && s.addon.mapDevice(s.h, id, fd)) this.devs.set(id, store)
    }
  }

  /** Native writes of this disk count for its next fsync. */
  pull(disk: DiskIO): void {
    const s = this.session
    const did = this.ids.get(disk)
    if (!s || did === undefined) return
    const ids = s.addon.mapPull(s.h, did)
    const stores = ids === null ? this.state.devices.ids() : ids
    for (const id of stores) {
      const store = this.state.store(id)
      if (store) disk.markDirty(store)
    }
  }

  /** fd was opened on disk (before the open is answered). */
  bind(fd: number, disk: DiskIO): void {
    const s = this.session
    const did = this.ids.get(disk)
    if (s && did !== undefined && !disk.removed) s.addon.fhBind(s.h, fd, did)
  }

  unbind(fd: number): void {
    const s = this.session
    if (s) s.addon.fhUnbind(s.h, fd)
  }

  private onEvent(op: number, d: Float64Array, o: number): void {
    if (op === OP.EV_UNBLOCKED) {
      const id = d[o + F.FH]!
      const resolve = this.waits.get(id)
      this.waits.delete(id)
      resolve?.()
    } else if (op === OP.EV_DEVERR) {
      const disk = this.byId.get(d[o + F.INO]!)
      const errno = ERRNO_NAMES.get(d[o + F.A]!) ?? 'EIO'
      disk?.reportDeviceError(d[o + F.FH]!, d[o + F.OFF]!, d[o + F.LEN]!, errno)
    }
  }

  private onEnded(): void {
    this.session = null
    this.ended = true
    this.devs.clear()
    this.blocks.clear()
    const waits = [...this.waits.values()]
    this.waits.clear()
    for (const w of waits) w()
  }

  private idOf(disk: DiskIO): number {
    let id = this.ids.get(disk)
    if (id === undefined) {
      id = this.nextId++
      this.ids.set(disk, id)
      this.byId.set(id, disk)
    }
    return id
  }

  private blocksOf(disk: DiskIO): number[] {
    let b = this.blocks.get(disk)
    if (!b) this.blocks.set(disk, (b = []))
    return b
  }

  private changingOf(disk: DiskIO): Span[] {
    let c = this.changing.get(disk)
    if (!c) this.changing.set(disk, (c = []))
    return c
  }
}
