// An in-memory Store for agent unit tests, with fault injection: fail reads
// or writes touching a byte range with EIO, and delay every operation.

import type { IoCallback, Store } from '../../src/agent/store'

export class MemStore implements Store {
  readonly data: Buffer
  reads = 0
  writes = 0
  syncs = 0
  /** Delay every read/write by this many ms (0: next tick). */
  delayMs = 0
  failReads: [number, number] | null = null
  failWrites: [number, number] | null = null
  /** Every write as [pos, len], in completion order. */
  readonly log: [number, number][] = []

  constructor(size: number) {
    this.data = Buffer.alloc(size)
  }

  private later(fn: () => void): void {
    if (this.delayMs > 0) setTimeout(fn, this.delayMs)
    else setImmediate(fn)
  }

  private hit(r: [number, number] | null, pos: number, len: number): boolean {
    return r !== null && pos < r[1] && r[0] < pos + len
  }

  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    this.reads++
    this.later(() => {
      if (this.hit(this.failReads, pos, len) || pos + len > this.data.length) return cb(eio())
      this.data.copy(buf, off, pos, pos + len)
      cb(null)
    })
  }

  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    this.writes++
    // Copy now: the caller's buffer is only ours until the callback.
    const copy = Buffer.from(buf.subarray(off, off + len))
    this.later(() => {
      if (this.hit(this.failWrites, pos, len) || pos + len > this.data.length) return cb(eio())
      copy.copy(this.data, pos)
      this.log.push([pos, len])
      cb(null)
    })
  }

  sync(cb: IoCallback): void {
    this.syncs++
    setImmediate(() => cb(null))
  }

  close(): void {}
}

function eio(): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error('injected I/O error')
  e.code = 'EIO'
  return e
}
