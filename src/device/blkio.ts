// The native helper native/blkio (fallocate, BLKZEROOUT, BLKDISCARD, sync_file_range, BLKGETSIZE64, SEEK_DATA /
// SEEK_HOLE on an fd), typed, plus promise forms. Invariant: loadBlkio() is null when the addon
// is not built or hidden (VSTOR_NO_NATIVE=blkio), and every caller then takes its pure-Node
// fallback; the async calls run on the libuv pool and call back exactly once.

import { loadAddon } from '../native'

export type ErrnoCallback = (err: NodeJS.ErrnoException | null) => void

export interface Blkio {
  readonly FALLOC_FL_KEEP_SIZE: number
  readonly FALLOC_FL_PUNCH_HOLE: number
  readonly FALLOC_FL_ZERO_RANGE: number
  /** fallocate(2). Offsets and lengths: integers in [0, 2^53 - 1], else a synchronous throw. */
  fallocate(fd: number, mode: number, offset: number, length: number, cb: ErrnoCallback): void
  /** ioctl BLKZEROOUT: the range reads zeros afterwards (block devices; 512-byte or logical-block aligned). */
  zeroout(fd: number, offset: number, length: number, cb: ErrnoCallback): void
  /** ioctl BLKDISCARD: the device may drop the range; reads afterwards are undefined. */
  discard(fd: number, offset: number, length: number, cb: ErrnoCallback): void
  /** sync_file_range(SYNC_FILE_RANGE_WRITE): writeback of the range's dirty pages starts; cb does not wait for it. */
  writeBehind(fd: number, offset: number, length: number, cb: ErrnoCallback): void
  /** ioctl BLKGETSIZE64, synchronous. Throws an errno error (ENOTTY on a regular file). */
  blockSize64(fd: number): number
  /** lseek SEEK_DATA: the next data offset at or after offset, -1 when none (ENXIO). */
  seekData(fd: number, offset: number): number
  /** lseek SEEK_HOLE: the next hole at or after offset (EOF counts), -1 past EOF (ENXIO). */
  seekHole(fd: number, offset: number): number
  /** posix_fadvise(DONTNEED), synchronous: this host's clean cached pages of the range go (length 0: to the end). */
  dropCache(fd: number, offset: number, length: number): void
  /**
   * sched_setscheduler(2) on thread tid (0: the calling one), synchronous: SCHED_FIFO priority 1
   * (threads it starts do not inherit it), or SCHED_OTHER at its nice. Throws an errno error
   * (EPERM without root or CAP_SYS_NICE, ESRCH for a thread that ended).
   */
  realtime(on: boolean, tid: number): void
  /** The addon's offset check, exposed for tests: the value as the C side received it. */
  checkOffset(value: unknown): bigint
}

export function loadBlkio(): Blkio | null {
  return loadAddon<Blkio>('blkio')
}

export function fallocateP(b: Blkio, fd: number, mode: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => b.fallocate(fd, mode, offset, length, (err) => (err ? reject(err) : resolve())))
}

export function zerooutP(b: Blkio, fd: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => b.zeroout(fd, offset, length, (err) => (err ? reject(err) : resolve())))
}
