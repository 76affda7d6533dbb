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
//   * results are fuse style: bytes transferred (>= 0) or a negative errno;
//   * fsync returns only when every write completed before it (on any fd of
//     this disk, on this loop or the native mapped path) is durable, and with
//     it every lazily committed table change this disk applied: sync rounds run
//     one after another, each covering the writes completed before it started,
//     and a store counts as dirty from a write's completion (native writes are
//     pulled in, ctx.pullDirty, before fsync and each round decide), so no
//     fsync can slip past a round in flight.

import os from 'node:os'
import { UNIT } from '../config'
import type { DiscardReply, Fault, FaultKind, FaultReply } from '../protocol/messages'
import { ALL_FLAGS, Flag, NO_DEVICE, WRITE_PROTECTED, type Table } from '../table/table'
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
  /** Every table commit up to this generation is durable at the controller. */
  readonly durable: number
  /** Ask the controller to return whole units to the zero state (answered once every agent applied it). */
  discard(p: { disk: string; uid: string; offset: number; length: number }): Promise<DiscardReply>
  /** Whether the controller is reachable now (discards write zeros instead of waiting for it). */
  readonly online: boolean
  /** Mark the stores written outside this DiskIO (the native mapped path) with markDirty, before an fsync decides. */
  pullDirty?(disk: DiskIO): void
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
  /** Reads, writes and discards that entered through JS, all disks of this agent (a busy signal for the controller's background jobs). */
  static served = 0
  /**
   * Writes finished (ok or not), every disk: counted before the write leaves the gate, so a table
   * change that quiesced a range counts every write that was in it (a move's fence ack carries it).
   */
  static written = 0
  readonly gate = new RangeGate()
  /** Set once the controller removed the disk; open handles then get EIO. */
  removed = false
  /** A read-only snapshot: writes are EROFS without asking anyone. */
  readonly = false
  /** Thin or cloned: whole units may go back to the zero state (discards, units written with zeros). */
  sparse = false
  /** Highest generation of a lazily committed change applied to this table: fsync needs a barrier past it. */
  lazyGen = 0
  /** Stores written since the last sync round took its snapshot (marked at write completion). */
  private dirty = new Set<Store>()
  private completed = 0
  private syncedUpTo = 0
  private rounds: Promise<void> = Promise.resolve()
  private readonly pending = new Map<string, Promise<FaultReply>>()

  constructor(
    readonly name: string,
    readonly uid: string,
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
    DiskIO.served++
    if (this.removed) return done(-E.EIO)
    const size = this.table.size
    if (pos >= size || len <= 0) return done(0) // at/after EOF: short read of 0
    const end = Math.min(pos + len, size)
    this.gate.enter(pos, end, false, (token) => this.readNow(token, buf, pos, end, done))
  }

  write(buf: Buffer, len: number, pos: number, done: Done): void {
    // Zero reclaim, cheap on the fast path: only a whole aligned unit of a sparse disk is looked at.
    if (this.sparse && len === UNIT && pos % UNIT === 0 && pos + UNIT <= this.table.size && isZero(buf, len)) {
      return this.discard(pos, len, (r) => done(r === 0 ? len : r))
    }
    this.writeRaw(buf, len, pos, done)
  }

  /** A write as it is (no zero detection). */
  writeRaw(buf: Buffer, len: number, pos: number, done: Done): void {
    DiskIO.served++
    if (this.removed) return done(-E.EIO)
    if (this.readonly) return done(-E.EROFS)
    if (len <= 0) return done(0)
    const size = this.table.size
    if (pos >= size) return done(-E.ENOSPC) // a disk never grows
    const end = Math.min(pos + len, size) // straddling the end: write what fits, short count
    this.gate.enter(pos, end, true, (token) => this.writeNow(token, buf, pos, end, done, 0))
  }

  /**
   * Make [pos, pos+len) read zeros (fallocate PUNCH_HOLE / ZERO_RANGE, a unit written with zeros):
   * whole units of a sparse disk go back to the zero state through the controller, which answers
   * once every agent applied it; partial units and thick disks get zeros written in place. Entry
   * states hold as for writes: no-write EROFS, invalid and error EIO. done(0) or a negative errno.
   */
  discard(pos: number, len: number, done: Done): void {
    DiskIO.served++
    if (this.removed) return done(-E.EIO)
    if (this.readonly) return done(-E.EROFS)
    const end = Math.min(pos + len, this.table.size)
    if (len <= 0 || pos >= end) return done(0)
    const a = Math.min(end, Math.ceil(pos / UNIT) * UNIT)
    const b = Math.max(a, Math.floor(end / UNIT) * UNIT)
    const steps: [number, number, boolean][] = [] // [start, end, whole units of a sparse disk]
    if (pos < a) steps.push([pos, a, false])
    if (a < b) steps.push([a, b, this.sparse])
    if (b < end) steps.push([b, end, false])
    const next = (i: number): void => {
      if (i === steps.length) return done(0)
      const [s, e, units] = steps[i]!
      const zeros = (): void => this.writeZeros(s, e, (r) => (r < 0 ? done(r) : next(i + 1)))
      if (this.isHole(s, e)) return next(i + 1) // reads zeros already: nothing to do, nothing to allocate
      if (!units || !this.ctx.online) return zeros()
      this.ctx.discard({ disk: this.name, uid: this.uid, offset: s, length: e - s }).then(
        (r) => {
          if (r.result === 'discarded') return next(i + 1)
          if (r.result === 'write-zeros') return zeros()
          done(-E[r.errno ?? 'EIO'])
        },
        zeros, // the controller went away meanwhile: zeros in place keep the promise (reads zeros)
      )
    }
    next(0)
  }

  /** Whether every byte of [start, end) is in a zero extent. */
  private isHole(start: number, end: number): boolean {
    const t = this.table
    for (let i = t.find(start); i < t.count && t.vstart(i) < end; i++) if (!(t.flags(i) & Flag.Zero)) return false
    return true
  }

  /** Zeros written over [start, end) through the normal write path (faults, states and all), a unit at a time. */
  private writeZeros(start: number, end: number, done: Done): void {
    const step = (pos: number): void => {
      if (pos >= end) return done(0)
      const n = Math.min(UNIT - (pos % UNIT), end - pos)
      this.writeRaw(ZEROS, n, pos, (r) => (r < 0 ? done(r) : step(pos + n)))
    }
    step(start)
  }

  /** lseek SEEK_DATA / SEEK_HOLE: zero extents are holes; the end of the disk is a hole. Negative errno when none. */
  seek(offset: number, whence: 'data' | 'hole'): number {
    const t = this.table
    if (offset < 0 || offset >= t.size) return -E.ENXIO
    for (let i = t.find(offset); i < t.count; i++) {
      const hole = (t.flags(i) & Flag.Zero) !== 0
      if (hole === (whence === 'hole')) return Math.max(offset, t.vstart(i))
    }
    return whence === 'hole' ? t.size : -E.ENXIO
  }

  /** Make durable every write completed before this call, and the table commits those writes depend on. */
  fsync(done: Done): void {
    if (this.removed) return done(-E.EIO)
    this.ctx.pullDirty?.(this) // native writes answered before this fsync count as completed now
    const target = this.completed
    const round = this.rounds.then(() => this.round(target))
    this.rounds = round.catch(() => {})
    round.then(
      () => done(0),
      () => done(-E.EIO),
    )
  }

  /** A store written outside this DiskIO's own loop (the native mapped path) needs the next round too. */
  markDirty(store: Store): void {
    this.completed++
    this.dirty.add(store)
  }

  /** One sync round: covers every write completed before it started. Rounds never overlap. */
  private async round(target: number): Promise<void> {
    this.ctx.pullDirty?.(this)
    const barrier = this.lazyGen > this.ctx.durable
    if (this.syncedUpTo >= target && !barrier) return
    const upto = this.completed
    const stores = [...this.dirty]
    this.dirty = new Set()
    try {
      // the table entries first (they only ever map zeroed space), then the data
      if (barrier) await this.ctx.metaSync()
      await Promise.all(stores.map((s) => new Promise<void>((resolve, reject) => s.sync((err) => (err ? reject(err) : resolve())))))
    } catch (e) {
      for (const s of stores) this.dirty.add(s) // the next round tries them again
      throw e
    }
    this.syncedUpTo = Math.max(this.syncedUpTo, upto)
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
      if (s.flags & WRITE_PROTECTED) faults.push(this.faultFor('write-protected', s.vpos, s.len))
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
        const bad = replies.find((r) => r.action !== 'retry')
        if (bad) return done(-E[bad.errno ?? (bad.action === 'deny' ? 'EROFS' : 'ENOSPC')])
        if (this.removed) return done(-E.EIO)
        this.gate.enter(pos, end, true, (tok) => this.writeNow(tok, buf, pos, end, done, attempt + 1))
      },
      () => done(-E.EIO), // controller unreachable beyond the fault timeout
    )
  }

  /**
   * The hot path: one plain mapped extent holds the whole request (NoWrite and Shared are fine for reads),
   * so it is one device call straight into fuse's buffer. False when the request needs the loop.
   */
  private direct(token: number, buf: Buffer, pos: number, end: number, done: Done, write: boolean): boolean {
    const t = this.table
    const i = t.find(pos)
    if (end > t.end(i) || (t.flags(i) & (write ? ALL_FLAGS : ~WRITE_PROTECTED)) !== 0) return false
    const device = t.device(i)
    const store = this.ctx.store(device)
    if (!store) return false
    const n = end - pos
    const cb = (err: NodeJS.ErrnoException | null): void => {
      if (write) DiskIO.written++
      this.gate.leave(token)
      if (err) return this.deviceError(err, device, pos, n, done)
      if (write) this.markDirty(store)
      done(n)
    }
    const at = t.pstart(i) + (pos - t.vstart(i))
    if (write) store.write(buf, 0, n, at, cb)
    else store.read(buf, 0, n, at, cb)
    return true
  }

  /** Issue device I/O for every segment in parallel; Zero segments of a read are filled here. */
  private issue(token: number, segs: Seg[], buf: Buffer, write: boolean, n: number, done: Done): void {
    let left = 1
    let failed: { err: NodeJS.ErrnoException; seg: Seg } | null = null
    const one = (): void => {
      if (--left !== 0) return
      if (write) DiskIO.written++
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
        else if (!err && write) this.markDirty(store)
        one()
      }
      if (write) store.write(buf, s.off, s.len, s.ppos, cb)
      else store.read(buf, s.off, s.len, s.ppos, cb)
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

  /** A failed device request: a full backing file system is ENOSPC for this write only; anything else is EIO and a device-error fault. */
  private deviceError(err: NodeJS.ErrnoException, device: number, offset: number, length: number, done: Done): void {
    const { name } = errnoOf(err)
    if (name === 'ENOSPC' || name === 'EDQUOT') return done(-E.ENOSPC)
    this.reportDeviceError(device, offset, length, name)
    done(-E.EIO)
  }

  /** Tell the controller about a device I/O error at [offset, offset+length) of this disk (no wait). The native path answers EIO itself. */
  reportDeviceError(device: number, offset: number, length: number, errno: string): void {
    this.tell({ ...this.faultFor('device-error', offset, length), device, errno })
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

/** A unit of zeros, shared: never written to. */
const ZEROS = Buffer.alloc(UNIT)

/** Whether buf[0..len) is all zeros (memcmp against a zero buffer). */
export function isZero(buf: Buffer, len: number): boolean {
  return buf.subarray(0, len).equals(ZEROS.subarray(0, len))
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
