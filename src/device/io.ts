// Whole-length positional transfers on an fd: inline (pread/pwrite on the calling thread) or on
// the libuv pool, and zero writes from one shared buffer.
//
// Invariants: a transfer moves exactly len bytes or fails; a read that hits the end of the device
// and a write that moves nothing are EIO (a mapping must never point past the device); every
// callback fires exactly once; ZEROS is never written into (only ever a write source).

import fs from 'node:fs'
import { eio } from './errno'

export type IoCallback = (err: NodeJS.ErrnoException | null) => void

/** Zero writes go out in pieces of at most this many bytes, all from one buffer. */
export const ZERO_CHUNK = 8 * 2 ** 20
let zeros: Buffer | null = null
function zeroBuffer(): Buffer {
  zeros ??= Buffer.alloc(ZERO_CHUNK)
  return zeros
}

/** fs.readSync / fs.writeSync in their positional form. */
type PositionalSync = (fd: number, buf: Buffer, off: number, len: number, pos: number) => number

function inline(op: PositionalSync, stall: string, fd: number, path: string, buf: Buffer, off: number, len: number, pos: number) {
  try {
    for (let done = 0; done < len;) {
      const n = op(fd, buf, off + done, len - done, pos + done)
      if (n === 0) return eio(`${stall} ${path} at ${pos + done}`)
      done += n
    }
    return null
  } catch (e) {
    return e as NodeJS.ErrnoException
  }
}

/** pread loop on the calling thread; the error or null. */
export function readInline(fd: number, path: string, buf: Buffer, off: number, len: number, pos: number): NodeJS.ErrnoException | null {
  return inline(fs.readSync, 'read past the end of', fd, path, buf, off, len, pos)
}

/** pwrite loop on the calling thread; the error or null. */
export function writeInline(fd: number, path: string, buf: Buffer, off: number, len: number, pos: number): NodeJS.ErrnoException | null {
  return inline(fs.writeSync, 'write made no progress on', fd, path, buf, off, len, pos)
}

/** pread on the pool; loops only when the kernel returns a short count. */
export function readPool(fd: number, path: string, buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
  if (len === 0) return process.nextTick(cb, null)
  const step = (done: number): void => {
    fs.read(fd, buf, off + done, len - done, pos + done, (err, n) => {
      if (err) return cb(err)
      if (n === 0) return cb(eio(`read past the end of ${path} at ${pos + done}`))
      if (done + n < len) return step(done + n)
      cb(null)
    })
  }
  step(0)
}

/** pwrite on the pool; loops only on a short count. */
export function writePool(fd: number, path: string, buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
  if (len === 0) return process.nextTick(cb, null)
  const step = (done: number): void => {
    fs.write(fd, buf, off + done, len - done, pos + done, (err, n) => {
      if (err) return cb(err)
      if (n === 0) return cb(eio(`write made no progress on ${path} at ${pos + done}`))
      if (done + n < len) return step(done + n)
      cb(null)
    })
  }
  step(0)
}

/** Write zeros over [pos, pos+len) on the pool, ≤ ZERO_CHUNK per write, from the shared buffer. */
export function writeZeros(fd: number, path: string, pos: number, len: number): Promise<void> {
  const buf = zeroBuffer()
  const end = pos + len
  return new Promise((resolve, reject) => {
    const step = (at: number): void => {
      if (at >= end) return resolve()
      writePool(fd, path, buf, 0, Math.min(ZERO_CHUNK, end - at), at, (err) =>
        err ? reject(err) : step(at + Math.min(ZERO_CHUNK, end - at)),
      )
    }
    step(pos)
  })
}
