// The FUSE face of the agent: one directory with NAME.img per disk.
//
// Invariants:
//   * readdir/getattr/open read the live disk map, so disks the controller
//     adds or removes appear and disappear at once;
//   * an fd keeps the DiskIO it opened: after the disk is removed its I/O
//     fails with EIO instead of landing on a new disk of the same name;
//   * mounted with direct_io (both front ends, see ./frontend), so every read
//     reaches the table (no stale page cache after an extent state change);
//   * permissions are the kernel's to enforce (default_permissions): images
//     are owned uid:gid with `mode` (default root 0600) and cannot be chmod'ed
//     or chown'ed (EPERM): the mount's --uid/--gid/--mode decide;
//   * errors are negative errno numbers from os.constants.errno.

import os from 'node:os'
import { UNIT } from '../config'
import type { DiskIO } from './io'
import type { Ops } from './frontend/fuse-native'
import type { AgentState } from './state'

const E = os.constants.errno
/** fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC = { KEEP_SIZE: 1, PUNCH_HOLE: 2, ZERO_RANGE: 16 } as const
const SEEK_DATA = 3
const SEEK_HOLE = 4
type Cb = (err: number, ...rest: unknown[]) => void

export { makeFuse, MOUNT_OPTIONS } from './frontend/fuse-native'
export type { FuseInstance } from './frontend/fuse-native'

export interface Handles {
  /** Open counts changed: the set of open disk names. */
  onOpenChange(disks: string[]): void
  /** Owner, group and permission bits of every image. */
  uid: number
  gid: number
  mode: number
  /** An fd was bound to a disk (before the open is answered) / released (the native mapped path follows fds). */
  onOpen?(fd: number, disk: DiskIO): void
  onRelease?(fd: number): void
}

/** Build the fuse-native ops over the agent state. */
export function makeOps(state: AgentState, h: Handles): Ops {
  const mountTime = new Date()
  const fds = new Map<number, DiskIO>()
  const openCount = new Map<string, number>()
  let nextFd = 1
  const diskOf = (path: string): DiskIO | undefined => (path.endsWith('.img') ? state.disks.get(path.slice(1, -4)) : undefined)
  const dirStat = { mode: 0o40755, size: 4096, nlink: 2, uid: 0, gid: 0, mtime: mountTime, atime: mountTime, ctime: mountTime }
  const fileStat = (d: DiskIO) => ({
    mode: 0o100000 | (d.readonly ? h.mode & ~0o222 : h.mode),
    size: d.size,
    nlink: 1,
    uid: h.uid,
    gid: h.gid,
    blksize: 4096,
    blocks: Math.floor(d.allocated() / 512),
    mtime: mountTime,
    atime: mountTime,
    ctime: mountTime,
  })
  const changeOpen = (name: string, delta: number): void => {
    const n = (openCount.get(name) ?? 0) + delta
    const was = openCount.has(name)
    if (n > 0) openCount.set(name, n)
    else openCount.delete(name)
    if (was !== openCount.has(name)) h.onOpenChange([...openCount.keys()].sort())
  }
  const perm = (...args: unknown[]): void => (args[args.length - 1] as Cb)(-E.EPERM)
  const noop = (...args: unknown[]): void => (args[args.length - 1] as Cb)(0)

  return {
    // Root lists one image per disk, straight from the live map.
    readdir: (path: string, cb: Cb) => {
      if (path !== '/') return cb(diskOf(path) ? -E.ENOTDIR : -E.ENOENT)
      cb(
        0,
        [...state.disks.keys()].sort().map((n) => `${n}.img`),
      )
    },
    // Exact size; blocks = allocated bytes / 512 so du shows thin usage; ENOENT for anything else.
    getattr: (path: string, cb: Cb) => {
      if (path === '/') return cb(0, dirStat)
      const d = diskOf(path)
      if (!d) return cb(-E.ENOENT)
      cb(0, fileStat(d))
    },
    // Bind the fd to this DiskIO; count opens for agent.open notes. ENOENT for unknown names,
    // EROFS for opening a read-only snapshot for writing (root passes the kernel's mode check).
    open: (path: string, flags: number, cb: Cb) => {
      const d = diskOf(path)
      if (!d) return cb(-E.ENOENT)
      if (d.readonly && (flags & 3) !== 0) return cb(-E.EROFS)
      const fd = nextFd++
      fds.set(fd, d)
      changeOpen(d.name, 1)
      h.onOpen?.(fd, d)
      cb(0, fd)
    },
    release: (_path: string, fd: number, cb: Cb) => {
      const d = fds.get(fd)
      if (d) {
        fds.delete(fd)
        h.onRelease?.(fd)
        changeOpen(d.name, -1)
      }
      cb(0)
    },
    // Data path: DiskIO answers with bytes or a negative errno (EIO once the disk is gone).
    read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(-E.EBADF)
      d.read(buf, len, pos, cb)
    },
    write: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(-E.EBADF)
      d.write(buf, len, pos, cb)
    },
    // fsync makes the devices this disk wrote durable (fdatasync); EIO if that fails.
    fsync: (_path: string, _datasync: number, fd: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(0)
      d.fsync(cb)
    },
    // close(2) must stay cheap: durability is fsync's job.
    flush: noop,
    // Discard and zeroing (libfuse 3 only: a guest's discard, fstrim and blkdiscard over losetup arrive
    // here): PUNCH_HOLE needs KEEP_SIZE; whole units of a sparse disk go back to the zero state, the
    // rest is zeroed in place. Plain preallocation inside the disk is already true (EOPNOTSUPP past it:
    // a disk never grows); collapse/insert range would move data: EOPNOTSUPP.
    fallocate: (_path: string, fd: number, mode: number, offset: number, length: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(-E.EBADF)
      const known = FALLOC.KEEP_SIZE | FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE
      if (mode & ~known || (mode & FALLOC.PUNCH_HOLE && !(mode & FALLOC.KEEP_SIZE))) return cb(-E.EOPNOTSUPP)
      if (offset + length > d.size && !(mode & FALLOC.KEEP_SIZE)) return cb(-E.EOPNOTSUPP)
      if (!(mode & (FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE))) return cb(d.removed ? -E.EIO : 0)
      d.discard(offset, length, (r) => cb(r < 0 ? r : 0))
    },
    // SEEK_DATA / SEEK_HOLE (libfuse 3 only): zero extents are holes, so qemu-img map/convert skip them.
    lseek: (_path: string, fd: number, offset: number, whence: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(-E.EBADF)
      if (whence !== SEEK_DATA && whence !== SEEK_HOLE) return cb(-E.EINVAL)
      const r = d.seek(offset, whence === SEEK_DATA ? 'data' : 'hole')
      if (r < 0) cb(r)
      else cb(0, r)
    },
    // A disk's size is set by the controller: same size is fine, anything else EPERM.
    truncate: (path: string, size: number, cb: Cb) => {
      const d = diskOf(path)
      if (!d) return cb(-E.ENOENT)
      cb(size === d.size ? 0 : -E.EPERM)
    },
    ftruncate: (_path: string, fd: number, size: number, cb: Cb) => {
      const d = fds.get(fd)
      if (!d) return cb(-E.EBADF)
      cb(size === d.size ? 0 : -E.EPERM)
    },
    // The namespace belongs to the controller: creating, deleting or renaming here is EPERM.
    create: perm,
    unlink: perm,
    mkdir: perm,
    rmdir: perm,
    rename: perm,
    symlink: perm,
    link: perm,
    mknod: perm,
    // Owner and mode come from the mount (--uid/--gid/--mode): changing them here would not last.
    chmod: perm,
    chown: perm,
    // Accepted and ignored, so tools that set times do not fail.
    utimens: noop,
    // Capacity of the mount = sum of disk sizes; nothing is free to create files with.
    statfs: (_path: string, cb: Cb) => {
      // Counted in 1 MiB fragments so 16 TiB+ pools fit fuse-native's 32-bit fields.
      let blocks = 0
      for (const d of state.disks.values()) blocks += Math.ceil(d.size / UNIT)
      cb(0, { bsize: 4096, frsize: UNIT, blocks, bfree: 0, bavail: 0, files: state.disks.size, ffree: 0, favail: 0, namemax: 255 })
    },
  }
}
