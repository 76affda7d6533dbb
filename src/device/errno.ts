// Node-style errno errors for the device layer ({code, errno < 0, syscall}, like fs errors), and
// the classification of "this kernel or file system cannot do that" answers that send a request
// to its fallback. Invariant: every error a device callback or promise gives is an Error with a
// string `code` naming an errno, so the agent can hand it to FUSE unchanged (agent/store errnoOf).

import os from 'node:os'

const ERRNO = os.constants.errno as Record<string, number>

/** An Error shaped like Node's fs errors: message "CODE: what", code, negative errno, syscall. */
export function errnoError(code: string, what: string, syscall?: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: ${what}`)
  e.code = code
  if (code in ERRNO) e.errno = -ERRNO[code]!
  if (syscall) e.syscall = syscall
  return e
}

/** Whole-length transfers: a read at the end of the device, or a write that moved nothing. */
export const eio = (what: string): NodeJS.ErrnoException => errnoError('EIO', what)

/** A request on a device after close() was called. */
export const ebadf = (path: string, op: string): NodeJS.ErrnoException =>
  errnoError('EBADF', `${op} on ${path} after the device was closed`, op)

/** fallocate modes a file system does not implement (tmpfs: ZERO_RANGE). */
export function unsupportedFallocate(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code
  return code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS'
}

/** Block ioctls a device does not implement, or not at this alignment (BLKZEROOUT wants logical blocks). */
export function unsupportedIoctl(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code
  return unsupportedFallocate(e) || code === 'ENOTTY' || code === 'EINVAL'
}
