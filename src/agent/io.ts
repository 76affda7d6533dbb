// The I/O loop of one virtual disk, nbdkit style.
//
// Invariants:
//   * a request is resolved against the table synchronously, in one go, into
//     segments; a table change (applied only under quiesce of its range)
//     therefore never splits one request across an old and a new mapping;
//   * a request is in the gate's in-flight set from resolution until its
//     device I/O completed; it leaves before it waits on the controller and
//     re-enters (and re-resolves) when the controller says retry;
//   * the hot path (request inside one mapped extent) is one fs.read/fs.write
//     straight into fuse's buffer: no socket traffic, no timers, no copies;
//   * results are fuse style: bytes transferred (>= 0) or a negative errno.

import os from 'node:os'
import { UNIT } from '../config'
import type { Fault, FaultKind, FaultReply } from '../protocol/messages'
import { ALL_FLAGS, Flag, NO_DEVICE, type Table } from '../table/table'
import { RangeGate } from './ranges'
import { errnoOf, type Store } from './store'

const E = os.constants.errno
export type Done = (result: number) => void

/** What a disk needs from the rest of the agent. */
export interface DiskContext {
  /** The store for a device id, if the agent has it open. */
  store(device: number): Store | undefined
  /** Send a fault and wait for the answer; rejects when the controller stays unreachable. */
  fault(f: Fault): Promise<FaultReply>
  /** Make the controller's table commits durable (fsync after allocations); rejects when it stays unreachable. */
  metaSync(): Promise<void>
  /** The agent's applied generation (goes into every fault). */
  readonly generation: number
}

interface Seg {
  off: number // offset in the request buffer
  len: number
  vpos: number // disk offset
  flags: number
  device: number
  ppos: number // absolute device offset
  estart: number // the extent this segment lies in
  eend: number
}

/** Give up after this many retries of one write (the controller kept saying retry without fixing the table). */
const MAX_RETRIES = 16

export class DiskIO {
  readonly gate = new RangeGate()
  /** Set once the controller removed the disk; open handles then get EIO. */
  removed = false
  private dirty = new Set<Store>()
  /** An allocation for this disk was committed lazily since the last fsync: fsync needs a metadata barrier. */
  private allocated_ = false
  private readonly pending = new Map<string, Promise<FaultReply>>()

  constructor(
    readonly name: string,
    public table: Table,
    private readonly ctx: DiskContext,
  ) {}

  get size(): number {
    return this.table.size
  }

  private allocatedAt: { table: Table; generation: number; bytes: number } | null = null
  /** Bytes mapped to devices (for st_blocks); O(extents), so cached per table generation. */
  allocated(): number {
    const t = this.table
    const c = this.allocatedAt
    if (c && c.table === t && c.generation === t.generation) return c.bytes
    const bytes = t.allocated()
    this.allocatedAt = { table: t, generation: t.generation, bytes }
    return bytes
  }

  read(buf: Buffer, len: number, pos: number, done: Done): void {
    if (this.removed) return done(-E.EIO)
    const size = this.table.size
    if (pos >= size || len <= 0) return done(0) // at/after EOF: short read of 0
    const end = Math.min(pos + len, size)
    this.gate.enter(pos, end, (token) => this.readNow(token, buf, pos, end, done))
  }

  write(buf: Buffer, len: number, pos: number, done: Done): void {
    if (this.removed) return done(-E.EIO)
    if (len <= 0) return done(0)
    const size = this.table.size
    if (pos >= size) return done(-E.ENOSPC) // a disk never grows
    const end = Math.min(pos + len, size) // straddling the end: write what fits, short count
    this.gate.enter(pos, end, (token) => this.writeNow(token, buf, pos, end, done, 0))
  }

  /** Make durable every store this disk wrote to since the last fsync, and the allocations behind them. */
  fsync(done: Done): void {
    if (!this.allocated_) return this.syncStores(done)
    this.allocated_ = false
    this.ctx.metaSync().then(
      () => this.syncStores(done),
      () => {
        this.allocated_ = true // try again on the next fsync
        done(-E.EIO)
      },
    )
  }

  private syncStores(done: Done): void {
    const stores = [...this.dirty]
    this.dirty = new Set()
    if (stores.length === 0) return done(0)
    let left = stores.length
    let failed = false
    for (const s of stores) {
      s.sync((err) => {
        if (err) {
          failed = true
          this.dirty.add(s)
        }
        if (--left === 0) done(failed ? -E.EIO : 0)
      })
    }
  }

  private readNow(token: number, buf: Buffer, pos: number, end: number, done: Done): void {
    if (this.removed) return this.fail(token, done, -E.EIO)
    const t = this.table
    if (this.direct(token, buf, pos, end, done, false)) return
    const segs = resolve(t, pos, end)
    if (this.rejectBad(segs)) return this.fail(token, done, -E.EIO)
    this.issue(token, segs, buf, false, end - pos, done)
  }

  private writeNow(token: number, buf: Buffer, pos: number, end: number, done: Done, attempt: number): void {
    if (this.removed) return this.fail(token, done, -E.EIO)
    const t = this.table
    const n = end - pos
    if (this.direct(token, buf, pos, end, done, true)) return
    const segs = resolve(t, pos, end)
    if (this.rejectBad(segs)) return this.fail(token, done, -E.EIO)
    const faults: Fault[] = []
    for (const s of segs) {
      if (s.flags & Flag.NoWrite) faults.push(this.faultFor('write-protected', s.vpos, s.len))
      else if (s.flags & Flag.Zero) {
        // Ask for whole units (clipped to the zero extent) so concurrent first writes into one unit share one fault.
        const a = Math.max(s.estart, Math.floor(s.vpos / UNIT) * UNIT)
        const b = Math.min(s.eend, Math.ceil((s.vpos + s.len) / UNIT) * UNIT)
        faults.push(this.faultFor('unallocated', a, b - a))
      }
    }
    if (faults.length === 0) return this.issue(token, segs, buf, true, n, done)
    // Leave before waiting: the controller's fix arrives as a table.update that must quiesce this range.
    this.gate.leave(token)
    if (attempt >= MAX_RETRIES) return done(-E.EIO)
    Promise.all(faults.map((f) => this.ask(f))).then(
      (replies) => {
        if (replies.some((r) => r.action === 'deny')) return done(-E.EROFS)
        if (replies.some((r) => r.action === 'fail')) return done(-E.ENOSPC)
        if (this.removed) return done(-E.EIO)
        if (faults.some((f) => f.kind === 'unallocated')) this.allocated_ = true
        this.gate.enter(pos, end, (tok) => this.writeNow(tok, buf, pos, end, done, attempt + 1))
      },
      () => done(-E.EIO), // controller unreachable beyond the fault timeout
    )
  }

  /**
   * The hot path: one plain mapped extent holds the whole request (NoWrite is fine for reads),
   * so it is one device call straight into fuse's buffer. False when the request needs the loop.
   */
  private direct(token: number, buf: Buffer, pos: number, end: number, done: Done, write: boolean): boolean {
    const t = this.table
    const i = t.find(pos)
    if (end > t.end(i) || (t.flags(i) & (write ? ALL_FLAGS : ~Flag.NoWrite)) !== 0) return false
    const device = t.device(i)
    const store = this.ctx.store(device)
    if (!store) return false
    const n = end - pos
    const cb = (err: NodeJS.ErrnoException | null): void => {
      this.gate.leave(token)
      if (err) return this.deviceError(err, device, pos, n, done)
      done(n)
    }
    const at = t.pstart(i) + (pos - t.vstart(i))
    if (write) {
      this.dirty.add(store)
      store.write(buf, 0, n, at, cb)
    } else store.read(buf, 0, n, at, cb)
    return true
  }

  /** Issue device I/O for every segment in parallel; Zero segments of a read are filled here. */
  private issue(token: number, segs: Seg[], buf: Buffer, write: boolean, n: number, done: Done): void {
    let left = 1
    let failed: { err: NodeJS.ErrnoException; seg: Seg } | null = null
    const one = (): void => {
      if (--left !== 0) return
      this.gate.leave(token)
      if (failed) return this.deviceError(failed.err, failed.seg.device, failed.seg.vpos, failed.seg.len, done)
      done(n)
    }
    for (const s of segs) {
      if (s.flags & Flag.Zero) {
        buf.fill(0, s.off, s.off + s.len)
        continue
      }
      const store = this.ctx.store(s.device)! // rejectBad checked it is open
      left++
      const cb = (err: NodeJS.ErrnoException | null): void => {
        if (err && !failed) failed = { err, seg: s }
        one()
      }
      if (write) {
        this.dirty.add(store)
        store.write(buf, s.off, s.len, s.ppos, cb)
      } else store.read(buf, s.off, s.len, s.ppos, cb)
    }
    one()
  }

  /**
   * Error or Invalid anywhere fails the whole request; Invalid also tells the controller (no wait).
   * So does a device this agent could not open (EIO, no fault: the device may be fine elsewhere).
   */
  private rejectBad(segs: Seg[]): boolean {
    let bad = false
    for (const s of segs) {
      if (s.flags & Flag.Error) bad = true
      else if (s.device !== NO_DEVICE && !(s.flags & Flag.Zero) && !this.ctx.store(s.device)) bad = true
      else if (s.flags & Flag.Invalid || (s.device === NO_DEVICE && !(s.flags & Flag.Zero))) {
        bad = true
        this.tell(this.faultFor('unmapped', s.vpos, s.len))
      }
    }
    return bad
  }

  private fail(token: number, done: Done, errno: number): void {
    this.gate.leave(token)
    done(errno)
  }

  private deviceError(err: NodeJS.ErrnoException, device: number, offset: number, length: number, done: Done): void {
    const { name } = errnoOf(err)
    this.tell({ ...this.faultFor('device-error', offset, length), device, errno: name })
    done(-E.EIO)
  }

  private faultFor(kind: FaultKind, offset: number, length: number): Fault {
    return { disk: this.name, kind, offset, length, generation: this.ctx.generation }
  }

  /** Send without waiting for the answer. */
  private tell(f: Fault): void {
    this.ctx.fault(f).catch(() => {})
  }

  /** Send and wait; identical faults in flight share one request. */
  private ask(f: Fault): Promise<FaultReply> {
    const key = `${f.kind}:${f.offset}:${f.length}`
    let p = this.pending.get(key)
    if (!p) {
      p = this.ctx.fault(f).finally(() => this.pending.delete(key))
      this.pending.set(key, p)
    }
    return p
  }
}

/** Split [pos, end) into per-extent segments against table t (synchronously). */
export function resolve(t: Table, pos: number, end: number): Seg[] {
  const segs: Seg[] = []
  let i = t.find(pos)
  let v = pos
  while (v < end) {
    const es = t.vstart(i)
    const ee = t.end(i)
    const len = Math.min(ee, end) - v
    const device = t.device(i)
    segs.push({
      off: v - pos,
      len,
      vpos: v,
      flags: t.flags(i),
      device,
      ppos: device === NO_DEVICE ? 0 : t.pstart(i) + (v - es),
      estart: es,
      eend: ee,
    })
    v += len
    i++
  }
  return segs
}
