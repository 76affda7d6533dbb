// Backing stores, s3backer style: the I/O loop only ever talks to this
// interface, so tests can swap in an in-memory store with fault injection.
//
// Invariants:
//   * one Store per device, opened once (one fd) and shared by every disk;
//   * read/write complete the whole length or fail: short transfers are
//     looped, a read that hits the end of the backing file is an error (EIO),
//     since a mapping must never point past the device;
//   * callbacks fire exactly once: asynchronously for 'async' stores, before
//     read/write return for 'sync' stores (callers must not care which).
//
// Two I/O modes (`vstor mount --io`):
//   * sync: pread/pwrite on the agent's main thread. A request costs no
//     thread-pool hand-off, which more than doubles 4k IOPS through FUSE
//     (the backing file is served from the page cache). A device that hangs
//     stalls the whole agent for as long as it hangs.
//   * async: libuv's thread pool. Slower per request, but a hung device
//     stalls only the requests mapped to it.

import fs from 'node:fs'
import os from 'node:os'

export type IoCallback = (err: NodeJS.ErrnoException | null) => void
export type IoMode = 'sync' | 'async'
export const IO_MODES: readonly IoMode[] = ['sync', 'async']

export interface Store {
  /** Read exactly `len` bytes at absolute device offset `pos` into buf[off..off+len). */
  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  /** Write exactly `len` bytes from buf[off..off+len) at absolute device offset `pos`. */
  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  /** Make every completed write durable (fdatasync). */
  sync(cb: IoCallback): void
  /** Release the fd; pending operations may fail afterwards. */
  close(): void
}

function eio(what: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(what)
  e.code = 'EIO'
  e.errno = -os.constants.errno.EIO
  return e
}

/** A regular file or block device opened O_RDWR once, positional I/O. */
export class FileStore implements Store {
  private closed = false
  protected constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  protected get fdNumber(): number {
    return this.fd
  }

  static open(path: string, mode: IoMode = 'async'): Promise<FileStore> {
    return new Promise((resolve, reject) => {
      fs.open(path, fs.constants.O_RDWR, (err, fd) => {
        if (err) return reject(err)
        resolve(mode === 'sync' ? new SyncFileStore(path, fd) : new FileStore(path, fd))
      })
    })
  }

  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    // Fast path: one fs.read; loop only when the kernel returns a short count.
    const step = (done: number): void => {
      fs.read(this.fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) return cb(err)
        if (n === 0) return cb(eio(`read past the end of ${this.path} at ${pos + done}`))
        if (done + n < len) return step(done + n)
        cb(null)
      })
    }
    step(0)
  }

  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    const step = (done: number): void => {
      fs.write(this.fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) return cb(err)
        if (n === 0) return cb(eio(`write made no progress on ${this.path} at ${pos + done}`))
        if (done + n < len) return step(done + n)
        cb(null)
      })
    }
    step(0)
  }

  sync(cb: IoCallback): void {
    if (this.closed) return process.nextTick(cb, null)
    fs.fdatasync(this.fd, (err) => cb(err))
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    fs.close(this.fd, () => {})
  }
}

/** fs.readSync / fs.writeSync in their positional form. */
type PositionalSync = (fd: number, buf: Buffer, off: number, len: number, pos: number) => number

/** The same file, with reads and writes done inline on the calling thread (`--io sync`). */
class SyncFileStore extends FileStore {
  override read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    cb(this.inline(fs.readSync, 'read past the end of', buf, off, len, pos))
  }

  override write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    cb(this.inline(fs.writeSync, 'write made no progress on', buf, off, len, pos))
  }

  /** Loop the positional call until the whole length moved; the error, if any. */
  private inline(op: PositionalSync, stall: string, buf: Buffer, off: number, len: number, pos: number): NodeJS.ErrnoException | null {
    try {
      for (let done = 0; done < len;) {
        const n = op(this.fdNumber, buf, off + done, len - done, pos + done)
        if (n === 0) return eio(`${stall} ${this.path} at ${pos + done}`)
        done += n
      }
      return null
    } catch (e) {
      return e as NodeJS.ErrnoException
    }
  }
}

/** Errno name and negative number for an I/O error (EIO when unknown). */
export function errnoOf(err: NodeJS.ErrnoException): { name: string; neg: number } {
  const name = typeof err.code === 'string' && err.code in os.constants.errno ? err.code : 'EIO'
  return { name, neg: -(os.constants.errno as Record<string, number>)[name]! }
}
