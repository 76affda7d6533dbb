// One open backing device (regular file or block device): the agent's hot path (callback
// read/write), the controller's copies (readAt/writeAt), space (zero/discard/reserve), fdatasync.
//
// Invariants:
//   * one fd, opened O_RDWR (never O_CREAT) and closed only by close(); when a uuid was given the
//     label at offset 0 carried it at open, else openDevice refused with DEVICE_MISMATCH;
//   * every request counts in `inflight` from its start until its callback ran (promises: until
//     settled); read/write move the whole length or fail (EIO at the end of the device) and call
//     back exactly once: inline in 'sync' mode, from the libuv pool in 'async' mode (callers must
//     not care which); readAt/writeAt/zero/discard/reserve/sync always use the pool;
//   * close() stops new requests at once (they fail EBADF and never touch the fd number, which
//     the kernel may hand out again), waits until inflight is 0, then closes the fd; it is
//     idempotent (one shared promise) and never rejects (close(2) errors are dropped: the fd is
//     released either way), so a caller may fire and forget it (agent Store.close(): void).

import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { VstorError } from '../errors'
import { loadBlkio, type Blkio } from './blkio'
import { ebadf, errnoError } from './errno'
import { readInline, readPool, writeInline, writePool, type IoCallback } from './io'
import { readLabelFd, UNREADABLE, type Label } from './label'
import { Space } from './space'
import { blockDeviceSize, kindOf, type DeviceKind } from './stat'

export type { IoCallback } from './io'
export type IoMode = 'sync' | 'async' // sync: pread/pwrite inline on the calling thread; async: libuv pool
export const IO_MODES: readonly IoMode[] = ['sync', 'async']

export interface Device {
  readonly uuid: string // label uuid ('' when opened without a label check)
  readonly path: string
  readonly kind: DeviceKind
  readonly size: number // bytes (block devices via BLKGETSIZE64 or sysfs)
  readonly fd: number // shared with native code (fuse3 mapped path); never closed by others; -1 once closed
  /** Whole length or an error; a short read at end of device is EIO. Callback exactly once. */
  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  readAt(buf: Buffer, pos: number): Promise<void> // promise forms (controller: copies), always on the pool
  writeAt(buf: Buffer, pos: number): Promise<void>
  /** Afterwards [pos,pos+len) reads zeros and its space is allocated (see space.ts). ENOSPC → err.code ENOSPC. */
  zero(pos: number, len: number): Promise<void>
  /** Afterwards [pos,pos+len) reads zeros; space may be given back. */
  discard(pos: number, len: number): Promise<void>
  /** Reserve host space without changing contents (files: fallocate(KEEP_SIZE); block: no-op). */
  reserve(pos: number, len: number): Promise<void>
  /**
   * Forget this host's cached pages of [pos, pos+len) (len 0: to the end), so the next read goes to
   * the device: another host may have written it (a shared LUN). Clean pages only: sync first.
   * A no-op without native/blkio.
   */
  dropCache(pos: number, len: number): void
  sync(cb: IoCallback): void // fdatasync
  syncP(): Promise<void>
  /**
   * Start writing [pos, pos+len)'s dirty cached pages to the device, not waiting for them: a later
   * sync finds them written or under way (a copy overlaps its reads with its writeback). Advice: it
   * always resolves (an I/O error shows in the sync); a no-op without native/blkio.
   */
  writeBehind(pos: number, len: number): Promise<void>
  /** Requests started and not yet called back. */
  readonly inflight: number
  /** Waits for in-flight requests, then closes the fd. Idempotent. After it, requests fail EBADF. */
  close(): Promise<void>
}

export interface OpenOptions {
  /** The label at offset 0 must carry this uuid (omit or '' for no check). */
  uuid?: string
  /** Hot-path I/O mode (default 'async'). */
  mode?: IoMode
}

const openP = promisify(fs.open)
const fstatP = promisify(fs.fstat)

/** Open a backing device by path; see OpenOptions. open(2) failures reject with the fs error (ENOENT...). */
export function openDevice(p: string, opts: OpenOptions = {}): Promise<Device> {
  return openDeviceWith(p, opts, loadBlkio())
}

/** openDevice with the native helper given explicitly: null selects the pure-Node fallbacks (tests). */
export async function openDeviceWith(p: string, opts: OpenOptions, blk: Blkio | null): Promise<FdDevice> {
  const mode = opts.mode ?? 'async'
  if (!IO_MODES.includes(mode)) throw new VstorError('BAD_ARGUMENT', `unknown I/O mode '${String(mode)}': use sync or async`)
  const abs = path.resolve(p)
  const fd = await openP(abs, fs.constants.O_RDWR)
  try {
    const st = await fstatP(fd)
    const kind = kindOf(st)
    if (!kind) throw new VstorError('DEVICE_INVALID', `cannot use ${abs}: not a regular file or block device`)
    const size = kind === 'file' ? st.size : await blockDeviceSize(fd, st.rdev, abs, blk)
    const uuid = opts.uuid ?? ''
    if (uuid) {
      const label = await readLabelFd(fd)
      if (label?.uuid !== uuid) throw mismatch(abs, label, uuid)
    }
    return new FdDevice(abs, fd, kind, size, uuid, mode, blk)
  } catch (e) {
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
    throw e
  }
}

function mismatch(p: string, label: Label | null, uuid: string): VstorError {
  const found =
    label === null
      ? 'no vstor label'
      : label.uuid === UNREADABLE
        ? 'a damaged vstor label'
        : `label ${label.uuid}${label.name ? ` (device '${label.name}')` : ''}`
  return new VstorError(
    'DEVICE_MISMATCH',
    `${p} carries ${found}, expected ${uuid}: the path now names another device (renumbered block device or replaced file); ` +
      `find the device whose label is ${uuid} and use its path, or remove the device from the pool if it is gone`,
  )
}

export class FdDevice implements Device {
  private fdNum: number
  private pending = 0
  private closing: Promise<void> | null = null
  private drained: (() => void) | null = null
  private readonly inlineIO: boolean
  private readonly space: Space
  private readonly blk: Blkio | null

  constructor(
    readonly path: string,
    fd: number,
    readonly kind: DeviceKind,
    readonly size: number,
    readonly uuid: string,
    readonly mode: IoMode,
    blk: Blkio | null,
  ) {
    this.fdNum = fd
    this.inlineIO = mode === 'sync'
    this.space = new Space(path, kind, blk)
    this.native = blk !== null
    this.blk = blk
  }

  /** Whether zero/discard/reserve (and block sizes) go through native/blkio. */
  readonly native: boolean

  get fd(): number {
    return this.fdNum
  }

  get inflight(): number {
    return this.pending
  }

  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    if (this.closing) return this.refuse('read', cb)
    this.pending++
    if (this.inlineIO) return this.finish(cb, readInline(this.fdNum, this.path, buf, off, len, pos))
    readPool(this.fdNum, this.path, buf, off, len, pos, (err) => this.finish(cb, err))
  }

  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    if (this.closing) return this.refuse('write', cb)
    this.pending++
    if (this.inlineIO) return this.finish(cb, writeInline(this.fdNum, this.path, buf, off, len, pos))
    writePool(this.fdNum, this.path, buf, off, len, pos, (err) => this.finish(cb, err))
  }

  readAt(buf: Buffer, pos: number): Promise<void> {
    return this.promise('read', (fd, cb) => readPool(fd, this.path, buf, 0, buf.length, pos, cb))
  }

  writeAt(buf: Buffer, pos: number): Promise<void> {
    return this.promise('write', (fd, cb) => writePool(fd, this.path, buf, 0, buf.length, pos, cb))
  }

  sync(cb: IoCallback): void {
    if (this.closing) return this.refuse('fdatasync', cb)
    this.pending++
    fs.fdatasync(this.fdNum, (err) => this.finish(cb, err))
  }

  syncP(): Promise<void> {
    return new Promise((resolve, reject) => this.sync((err) => (err ? reject(err) : resolve())))
  }

  writeBehind(pos: number, len: number): Promise<void> {
    const b = this.blk
    if (!b || this.closing) return Promise.resolve()
    return this.promise('sync_file_range', (fd, cb) => b.writeBehind(fd, pos, len, cb)).catch(() => {})
  }

  zero(pos: number, len: number): Promise<void> {
    return this.ranged('zero', pos, len, (fd) => this.space.zero(fd, pos, len))
  }

  discard(pos: number, len: number): Promise<void> {
    return this.ranged('discard', pos, len, (fd) => this.space.discard(fd, pos, len))
  }

  reserve(pos: number, len: number): Promise<void> {
    return this.ranged('reserve', pos, len, (fd) => this.space.reserve(fd, pos, len))
  }

  dropCache(pos: number, len: number): void {
    if (this.closing || !this.blk) return
    try {
      this.blk.dropCache(this.fdNum, pos, len)
    } catch {
      // advice only: a device that refuses it keeps its cache
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shut()
    return this.closing
  }

  private async shut(): Promise<void> {
    if (this.pending > 0) await new Promise<void>((resolve) => (this.drained = resolve))
    const fd = this.fdNum
    this.fdNum = -1
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
  }

  /** One request ended: its callback runs, then a waiting close() may go on. */
  private finish(cb: IoCallback, err: NodeJS.ErrnoException | null): void {
    this.pending--
    try {
      cb(err)
    } finally {
      if (this.pending === 0 && this.drained) {
        const go = this.drained
        this.drained = null
        go()
      }
    }
  }

  private refuse(op: string, cb: IoCallback): void {
    process.nextTick(cb, ebadf(this.path, op))
  }

  private promise(op: string, start: (fd: number, cb: IoCallback) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closing) return reject(ebadf(this.path, op))
      this.pending++
      start(this.fdNum, (err) => this.finish((e) => (e ? reject(e) : resolve()), err))
    })
  }

  /** A zero/discard/reserve over a checked range, counted in inflight until it settles. */
  private ranged(op: string, pos: number, len: number, run: (fd: number) => Promise<void>): Promise<void> {
    const bad = this.badRange(op, pos, len)
    if (bad) return Promise.reject(bad)
    if (len === 0) return this.closing ? Promise.reject(ebadf(this.path, op)) : Promise.resolve()
    return this.promise(op, (fd, cb) => run(fd).then(() => cb(null), cb))
  }

  private badRange(op: string, pos: number, len: number): NodeJS.ErrnoException | null {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(len) || pos < 0 || len < 0) {
      return errnoError('EINVAL', `${op} on ${this.path}: offset ${pos} and length ${len} must be integers >= 0`, op)
    }
    if (pos + len > this.size) {
      return errnoError('EINVAL', `${op} on ${this.path}: [${pos}, ${pos + len}) runs past the end of the device (${this.size} bytes)`, op)
    }
    return null
  }
}
