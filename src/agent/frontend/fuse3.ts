// Fuse3: a libfuse 3 low-level front end (native/fuse3) with fuse-native's shape, so the agent
// keeps one set of path-based handlers.
//
// Invariants:
//   * the FUSE loop runs on the addon's threads; this (JS) thread only sees batches: one call per
//     wakeup with every request queued since the last one, answered whenever handlers call back;
//   * a read handler fills a Buffer over the addon's data slot; a write handler reads one; both are
//     valid until the handler calls back (after that the slot serves other requests);
//   * unmount(cb) lets the requests in flight be answered first, then unmounts (a mount still held
//     open is aborted and detached after drainTimeoutMs at the latest); cb runs once the FUSE loop
//     has ended;
//   * the inode table lives in the addon: ino per path, stable for the life of the mount;
//   * reads and writes of plainly mapped extents may be served in the addon's worker threads
//     (attachNative, native-map.ts) and never reach this thread.

import fs from 'node:fs'
import path from 'node:path'
import { loadAddon } from '../../native'
import { CAP, F, OP, SCRATCH_LEN, STRIDE, type Fuse3Addon, type Handle, type NativeConfig } from './fuse3-abi'
import { dispatch, type Ctx } from './fuse3-dispatch'
import type { Fuse3Handlers } from './fuse3-handlers'
import { nativeConfig, type Fuse3Options } from './fuse3-options'

export type { Fuse3Handlers, StatLike, StatfsLike } from './fuse3-handlers'
export type { Fuse3Options } from './fuse3-options'

/** True when native/fuse3 is built (bin/setup) and loads. */
export function fuse3Available(): boolean {
  return loadAddon<Fuse3Addon>('fuse3') !== null
}

/** What the kernel and libfuse agreed at INIT. */
export interface Fuse3Conn {
  protoMajor: number
  protoMinor: number
  want: number
  capable: number
  maxWrite: number
  maxRead: number
  maxBackground: number
  congestionThreshold: number
  asyncDio: boolean
}

type Cb = (err: Error | null) => void

/** What a native-path client (native-map.ts) gets: the addon and the session, and the events for it. */
export interface NativeSession {
  addon: Fuse3Addon
  h: Handle
}
export interface NativeClient {
  /** EV_UNBLOCKED / EV_DEVERR, as they arrive. */
  onEvent(op: number, d: Float64Array, o: number): void
  /** The FUSE loop ended: no native request will run again. */
  onEnded(): void
}
type State = 'idle' | 'mounting' | 'mounted' | 'unmounting' | 'ended'
type LooseOps = Record<string, (...args: never[]) => void>

export class Fuse3 {
  readonly mnt: string
  /** Negotiated at INIT (null before mount). */
  conn: Fuse3Conn | null = null
  /** The -o options handed to libfuse. */
  readonly mountOptions: string[]
  private readonly config: NativeConfig
  private readonly drainTimeoutMs: number
  private readonly ops: Fuse3Handlers
  private readonly desc: Float64Array
  private readonly scratch = new Float64Array(SCRATCH_LEN)
  private readonly paths = new Map<number, string>([[1, '/']])
  private readonly slots: Buffer[] = []
  private addon: Fuse3Addon | null
  private h: Handle | null = null
  private state: State = 'idle'
  private mountCb: Cb | null = null
  private mountErr: Error | null = null
  private unmountCbs: Cb[] = []
  private ctx: Ctx | null = null
  private native: NativeClient | null = null

  constructor(mnt: string, ops: Fuse3Handlers | LooseOps, opts: Fuse3Options = {}) {
    this.mnt = mnt
    this.ops = ops as Fuse3Handlers
    const { config, options } = nativeConfig(opts)
    this.config = config
    this.mountOptions = options
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 30_000
    this.desc = new Float64Array(STRIDE * Math.max(1, opts.batchSize ?? 256))
    this.addon = loadAddon<Fuse3Addon>('fuse3')
  }

  /** cb(null) once the kernel has initialised the connection, or cb(error). */
  mount(cb: Cb): void {
    if (this.state !== 'idle') return process.nextTick(cb, new Error(`fuse3: ${this.mnt} was mounted already`))
    const addon = this.addon
    if (!addon) return process.nextTick(cb, new Error('fuse3: native/fuse3 is not built (run bin/setup)'))
    try {
      // The kernel lists the mount under its canonical path; the addon finds it there to unmount it.
      const abs = path.resolve(this.mnt)
      const canonical = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs))
      this.h = addon.mount(canonical, this.mountOptions, this.config, this.desc, this.scratch, (n, strs) => this.onBatch(n, strs))
    } catch (e) {
      return process.nextTick(cb, e as Error)
    }
    this.ctx = { addon, h: this.h, ops: this.ops, scratch: this.scratch, slot: (i) => this.slot(i) }
    this.state = 'mounting'
    this.mountCb = cb
  }

  /** Drain in-flight requests, unmount, and cb once the FUSE loop has ended. */
  unmount(cb: Cb): void {
    switch (this.state) {
      case 'idle':
      case 'ended':
        return process.nextTick(cb, null)
      case 'mounting':
      case 'unmounting':
        this.unmountCbs.push(cb)
        return
      case 'mounted':
        this.unmountCbs.push(cb)
        this.startUnmount()
    }
  }

  private startUnmount(): void {
    this.state = 'unmounting'
    this.addon!.unmount(this.h!, false)
    const timer = setTimeout(() => this.state === 'unmounting' && this.addon!.unmount(this.h!, true), this.drainTimeoutMs)
    timer.unref()
  }

  /** The session for the native mapped path (once mount() was called and until the loop ended), or null. */
  attachNative(client: NativeClient): NativeSession | null {
    if (!this.addon || !this.h || this.state === 'ended' || this.state === 'idle') return null
    this.native = client
    return { addon: this.addon, h: this.h }
  }

  private slot(i: number): Buffer {
    let b = this.slots[i]
    if (!b) b = this.slots[i] = this.addon!.slotBuffer(this.h!, i)
    return b
  }

  private onBatch(n: number, strs: string[] | undefined): void {
    const d = this.desc
    const ctx = this.ctx!
    for (let i = 0, o = 0; i < n; i++, o += STRIDE) {
      const op = d[o + F.OP]!
      if (op >= OP.EV_MOUNTED) {
        this.onEvent(op, d, o, strs)
        continue
      }
      const ino = d[o + F.INO]!
      const p = d[o + F.PATH]!
      if (p >= 0) this.paths.set(ino, strs![p]!)
      dispatch(ctx, d, o, this.paths.get(ino) ?? '', strs)
    }
  }

  private onEvent(op: number, d: Float64Array, o: number, strs: string[] | undefined): void {
    if (op === OP.EV_MOUNTED) {
      const want = d[o + F.A]!
      const proto = d[o + F.C]!
      this.conn = {
        protoMajor: Math.floor(proto / 1000),
        protoMinor: proto % 1000,
        want,
        capable: d[o + F.B]!,
        maxWrite: d[o + F.OFF]!,
        maxRead: d[o + F.LEN]!,
        maxBackground: d[o + F.D]!,
        congestionThreshold: d[o + F.E]!,
        asyncDio: (want & CAP.ASYNC_DIO) !== 0,
      }
      this.state = 'mounted'
      this.finishMount(null)
      if (this.unmountCbs.length) this.startUnmount()
    } else if (op === OP.EV_FAILED) {
      const msg = strs?.[d[o + F.NAME]!] ?? ''
      const err = new Error(`fuse3: cannot mount ${this.mnt}: ${msg.trim()}`) as NodeJS.ErrnoException
      err.errno = d[o + F.A]!
      this.mountErr = err
    } else if (op === OP.EV_UNBLOCKED || op === OP.EV_DEVERR) {
      this.native?.onEvent(op, d, o)
    } else if (op === OP.EV_ENDED) {
      const was = this.state
      this.state = 'ended'
      const native = this.native
      this.native = null
      native?.onEnded()
      if (was === 'mounting') this.finishMount(this.mountErr ?? new Error(`fuse3: ${this.mnt}: the FUSE session ended before INIT`))
      const cbs = this.unmountCbs
      this.unmountCbs = []
      for (const cb of cbs) cb(null)
      this.ctx = null
    } else {
      throw new Error(`fuse3: unknown event ${op}`)
    }
  }

  private finishMount(err: Error | null): void {
    const cb = this.mountCb
    this.mountCb = null
    cb?.(err)
  }
}
