// What the I/O loop needs from a backing device, s3backer style: one small
// interface, so tests can swap in an in-memory store with fault injection.
// The real thing is the device layer (src/device: one Device per device,
// opened by label uuid), shared with the controller.
//
// Contract: read/write complete the whole length or fail (a read past the end
// of the device is EIO, since a mapping must never point past it); callbacks
// fire exactly once, inline or later (callers must not care which); sync is
// fdatasync of every completed write; close waits for in-flight requests.

import os from 'node:os'
import type { IoCallback, IoMode } from '../device'

export type { IoCallback, IoMode }
export const IO_MODES: readonly IoMode[] = ['sync', 'async']

export interface Store {
  /** Read exactly `len` bytes at absolute device offset `pos` into buf[off..off+len). */
  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  /** Write exactly `len` bytes from buf[off..off+len) at absolute device offset `pos`. */
  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void
  /** Make every completed write durable (fdatasync). */
  sync(cb: IoCallback): void
  /** Release the device once in-flight requests finished. */
  close(): void | Promise<void>
  /** Zero [pos, pos+len) (fallocate/discard of a thick disk); optional: without it the loop writes zeros. */
  zero?(pos: number, len: number): Promise<void>
  /** Forget this host's cached pages of the range (another host may write the device); optional. */
  dropCache?(pos: number, len: number): void
}

/** Errno name and negative number for an I/O error (EIO when unknown). */
export function errnoOf(err: NodeJS.ErrnoException): { name: string; neg: number } {
  const name = typeof err.code === 'string' && err.code in os.constants.errno ? err.code : 'EIO'
  return { name, neg: -(os.constants.errno as Record<string, number>)[name]! }
}
