// fuse-native-shaped handlers, as Fuse3 calls them, and the errno/stat conversions between them
// and the addon. Invariants: a handler's error is a negative errno (0 = success; anything that
// is not a number <= 0 counts as EIO); times are Date or milliseconds; sizes and offsets are
// plain numbers (exact below 2^53).

import os from 'node:os'
import { SC, SV } from './fuse3-abi'

const E = os.constants.errno

export type Done = (err: number) => void
export interface StatLike {
  mode?: number
  uid?: number
  gid?: number
  size?: number
  blocks?: number
  blksize?: number
  nlink?: number
  rdev?: number
  dev?: number
  ino?: number
  atime?: Date | number
  mtime?: Date | number
  ctime?: Date | number
}
export interface StatfsLike {
  bsize?: number
  frsize?: number
  blocks?: number
  bfree?: number
  bavail?: number
  files?: number
  ffree?: number
  favail?: number
  fsid?: number
  flag?: number
  namemax?: number
}

/** Handlers in fuse-native's shape (all optional), plus fallocate and lseek. Method syntax on purpose:
 *  an agent's loosely typed ops object (Record<string, (...args: never[]) => void>) fits. */
export interface Fuse3Handlers {
  getattr?(path: string, cb: (err: number, stat?: StatLike) => void): void
  readdir?(path: string, cb: (err: number, names?: string[], stats?: StatLike[]) => void): void
  open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void
  create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void
  release?(path: string, fd: number, cb: Done): void
  /** cb(bytes read) or cb(-errno). buf is len bytes, valid until cb. */
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
  /** cb(bytes written) or cb(-errno). buf holds the request's data, valid until cb. */
  write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
  flush?(path: string, fd: number, cb: Done): void
  fsync?(path: string, datasync: number, fd: number, cb: Done): void
  truncate?(path: string, size: number, cb: Done): void
  ftruncate?(path: string, fd: number, size: number, cb: Done): void
  chmod?(path: string, mode: number, cb: Done): void
  chown?(path: string, uid: number, gid: number, cb: Done): void
  utimens?(path: string, atime: number, mtime: number, cb: Done): void
  statfs?(path: string, cb: (err: number, st?: StatfsLike) => void): void
  mknod?(path: string, mode: number, dev: number, cb: Done): void
  mkdir?(path: string, mode: number, cb: Done): void
  unlink?(path: string, cb: Done): void
  rmdir?(path: string, cb: Done): void
  rename?(src: string, dest: string, cb: Done): void
  symlink?(target: string, path: string, cb: Done): void
  link?(src: string, dest: string, cb: Done): void
  readlink?(path: string, cb: (err: number, target?: string) => void): void
  /** mode bits as the kernel sends them (FALLOC_FL_KEEP_SIZE=1, PUNCH_HOLE=2, ZERO_RANGE=16, ...). */
  fallocate?(path: string, fd: number, mode: number, offset: number, length: number, cb: Done): void
  /** whence is SEEK_DATA (3) or SEEK_HOLE (4); the kernel handles the others itself. */
  lseek?(path: string, fd: number, offset: number, whence: number, cb: (err: number, offset?: number) => void): void
}

/** A handler's result as a positive errno for the kernel (0 = success). */
export function toErrno(err: unknown): number {
  if (err === 0 || err === null || err === undefined) return 0
  if (typeof err === 'number' && Number.isInteger(err) && err < 0) return -err
  return E.EIO
}

const ms = (t: Date | number | undefined, now: number): number => (t === undefined ? now : typeof t === 'number' ? t : t.getTime())

export function writeStat(s: Float64Array, st: StatLike | undefined): void {
  const now = Date.now()
  s[SC.MODE] = st?.mode ?? 0
  s[SC.UID] = st?.uid ?? 0
  s[SC.GID] = st?.gid ?? 0
  s[SC.SIZE] = st?.size ?? 0
  s[SC.BLOCKS] = st?.blocks ?? 0
  s[SC.BLKSIZE] = st?.blksize ?? 0
  s[SC.NLINK] = st?.nlink ?? 1
  s[SC.RDEV] = st?.rdev ?? 0
  s[SC.ATIME] = ms(st?.atime, now)
  s[SC.MTIME] = ms(st?.mtime, now)
  s[SC.CTIME] = ms(st?.ctime, now)
}

export function writeStatfs(s: Float64Array, st: StatfsLike | undefined): void {
  s[SV.BSIZE] = st?.bsize ?? 4096
  s[SV.FRSIZE] = st?.frsize ?? st?.bsize ?? 4096
  s[SV.BLOCKS] = st?.blocks ?? 0
  s[SV.BFREE] = st?.bfree ?? 0
  s[SV.BAVAIL] = st?.bavail ?? 0
  s[SV.FILES] = st?.files ?? 0
  s[SV.FFREE] = st?.ffree ?? 0
  s[SV.FAVAIL] = st?.favail ?? 0
  s[SV.FSID] = st?.fsid ?? 0
  s[SV.FLAG] = st?.flag ?? 0
  s[SV.NAMEMAX] = st?.namemax ?? 255
}

/** The d_type of a stat's mode (DT_* = file type bits >> 12), 0 when unknown. */
export const direntType = (st: StatLike | undefined): number => ((st?.mode ?? 0) >> 12) & 0xf

/** The stat fuse-native reports for "/" when no getattr handler exists. */
export const DEFAULT_ROOT: StatLike = { mode: 0o40755, size: 4096, nlink: 2, atime: 0, mtime: 0, ctime: 0 }
