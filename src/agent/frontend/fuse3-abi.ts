// The contract between native/fuse3 (C) and fuse3.ts: op codes, descriptor and scratch layouts,
// and the addon's functions. Invariant: every number here equals its enum in
// native/fuse3/src/fuse3.h; change both together.

/** Requests (and events) as the addon hands them to JS. */
export const OP = {
  LOOKUP: 1,
  GETATTR: 2,
  SETATTR: 3,
  READDIR: 4,
  OPEN: 5,
  RELEASE: 6,
  READ: 7,
  WRITE: 8,
  FLUSH: 9,
  FSYNC: 10,
  STATFS: 11,
  FALLOCATE: 12,
  LSEEK: 13,
  CREATE: 14,
  MKNOD: 15,
  MKDIR: 16,
  UNLINK: 17,
  RMDIR: 18,
  RENAME: 19,
  SYMLINK: 20,
  LINK: 21,
  READLINK: 22,
  EV_MOUNTED: 64,
  EV_FAILED: 65,
  EV_ENDED: 66,
  /** Native map: F.INO disk, F.FH block id: no native request is in flight in the blocked range any more. */
  EV_UNBLOCKED: 67,
  /** Native map: F.INO disk, F.FH device, F.OFF, F.LEN, F.A errno: a device I/O error (answered EIO already). */
  EV_DEVERR: 68,
} as const

/** Descriptor fields: STRIDE doubles per request in the shared Float64Array. */
export const F = {
  ID: 0,
  OP: 1,
  INO: 2,
  FH: 3,
  OFF: 4,
  LEN: 5,
  A: 6,
  B: 7,
  C: 8,
  D: 9,
  E: 10,
  SLOT: 11,
  PATH: 12,
  NAME: 13,
  NAME2: 14,
} as const
export const STRIDE = 16

/** Stat fields JS writes into scratch before replyAttr/replyEntry/replyCreate. */
export const SC = { MODE: 0, UID: 1, GID: 2, SIZE: 3, BLOCKS: 4, BLKSIZE: 5, NLINK: 6, RDEV: 7, ATIME: 8, MTIME: 9, CTIME: 10 } as const
/** Statfs fields JS writes into scratch before replyStatfs. */
export const SV = {
  BSIZE: 0,
  FRSIZE: 1,
  BLOCKS: 2,
  BFREE: 3,
  BAVAIL: 4,
  FILES: 5,
  FFREE: 6,
  FAVAIL: 7,
  FSID: 8,
  FLAG: 9,
  NAMEMAX: 10,
} as const
export const SCRATCH_LEN = 16

/** setattr bits (fuse_lowlevel.h FUSE_SET_ATTR_*); FH_SET marks a setattr on an open file. */
export const SET = { MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, FH_SET: 1 << 30 } as const

/** fuse_common.h FUSE_CAP_* bits reported in Fuse3.conn. */
export const CAP = { ASYNC_READ: 1 << 0, SPLICE_WRITE: 1 << 7, SPLICE_MOVE: 1 << 8, SPLICE_READ: 1 << 9, ASYNC_DIO: 1 << 15 } as const

export interface NativeConfig {
  entryTimeout: number
  attrTimeout: number
  negativeTimeout: number
  maxWrite: number
  maxRead: number
  maxBackground: number
  congestionThreshold: number
  maxThreads: number
  maxIdleThreads: number
  cloneFd: boolean
  directIo: boolean
  parallelDirectWrites: boolean
  spliceRead: boolean
  spliceWrite: boolean
  asyncDio: boolean
  debug: boolean
}

export type Handle = object & { readonly __fuse3: unique symbol }

/** native/fuse3's exports. Every reply returns false when the request was answered already. */
export interface Fuse3Addon {
  mount(
    mountpoint: string,
    options: string[],
    config: NativeConfig,
    desc: Float64Array,
    scratch: Float64Array,
    onBatch: (n: number, strings: string[] | undefined) => void,
  ): Handle
  unmount(h: Handle, force: boolean): void
  reply(h: Handle, id: number, errno: number): boolean
  replyAttr(h: Handle, id: number): boolean
  replyEntry(h: Handle, id: number): boolean
  /** false: the opener is gone (interrupted); the fd must be released by the caller. */
  replyOpen(h: Handle, id: number, fh: number): boolean
  replyCreate(h: Handle, id: number, fh: number): boolean
  replyRead(h: Handle, id: number, bytes: number): boolean
  replyWrite(h: Handle, id: number, bytes: number): boolean
  replyStatfs(h: Handle, id: number): boolean
  replyLseek(h: Handle, id: number, offset: number): boolean
  replyReadlink(h: Handle, id: number, target: string): boolean
  replyReaddir(h: Handle, id: number, names: string[], types?: number[]): boolean
  slotBuffer(h: Handle, slot: number): Buffer
  version(): number

  // The native mapped path (native/fuse3/src/nmap*.c); every call is a no-op once the loop ended.
  /** Device id reads and writes through (a dup of) fd; fd < 0 forgets it. */
  mapDevice(h: Handle, device: number, fd: number): boolean
  /** Make or update a disk (extents past size are dropped). */
  mapDisk(h: Handle, disk: number, size: number, readonly: boolean, sparse: boolean): boolean
  /** [lo, hi) maps exactly these extents ([vstart, vend, pstart, device, readOnly] × n); block (if not 0) is lifted. */
  mapApply(h: Handle, disk: number, lo: number, hi: number, extents: Float64Array, n: number, block: number): boolean
  /** Block [start, end): > 0 wait for EV_UNBLOCKED(id); < 0 nothing in flight (-id is the block); 0 no such disk. `writes`: only writes in flight count. */
  mapBlock(h: Handle, disk: number, start: number, end: number, writes?: boolean): number
  mapUnblock(h: Handle, disk: number, block: number): void
  mapRemove(h: Handle, disk: number): void
  fhBind(h: Handle, fh: number, disk: number): boolean
  fhUnbind(h: Handle, fh: number): void
  /** Device ids written natively since the last pull; null: every device. */
  mapPull(h: Handle, disk: number): number[] | null
  mapEnable(h: Handle, on: boolean): void
  mapStats(h: Handle): Partial<NativeStats>
  /** Reads + writes the native path answered (atomic counters, no lock). */
  mapServed(h: Handle): number
  /** Writes the native path finished (ok or not), counted before each leaves the flight list; atomics only. */
  mapWritten(h: Handle): number
}

export interface NativeStats {
  reads: number
  writes: number
  /** Reads and writes the native path looked at and handed to JS. */
  toJs: number
  /** Requests that waited for a worker of their device. */
  queued: number
  errors: number
  extents: number
  /** Bytes of C extent arrays (capacity). */
  extentBytes: number
}
