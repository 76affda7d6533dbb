// A tiny file system served through Fuse3 (or fuse-native) in a child process, driven by the
// front-end tests over IPC (fork). Files are sparse in memory (64 KiB chunks), or one file passes
// through to a backing file (for benchmarks).
//
// Invariants: this process never touches its own mount; it reports what its handlers saw (largest
// request, most requests in flight at once, fallocate/lseek calls) on request; SIGTERM unmounts
// (draining) and exits 0.
//
// argv[2]: JSON ChildConfig.

import fs from 'node:fs'
import os from 'node:os'
import { Fuse3, type Fuse3Options } from '../../../src/agent/frontend/fuse3'
import { makeFuse } from '../../../src/agent/frontend/fuse-native'

const E = os.constants.errno
const CHUNK = 64 * 1024

export interface FileSpec {
  name: string
  size: number
  mode?: number
  uid?: number
  gid?: number
}
export interface ChildConfig {
  mnt: string
  frontend: 'fuse3' | 'fuse-native'
  files: FileSpec[]
  options?: string[]
  /** Answer reads and writes after this many ms (makes concurrency observable). */
  deferMs?: number
  /** Hold reads at this offset until {cmd:'release'}. */
  holdReadsAt?: number
  /** Serve files[0] from this backing file (sync pread/pwrite), for benchmarks. */
  backing?: string
  /** Misbehaving handlers: reads of this file throw; reads of `twice` call back twice. */
  faulty?: { throws: string; twice: string }
  /** Extra Fuse3 options (tunables), for benchmarks. */
  fuse3?: Fuse3Options
}
export interface Stats {
  ops: Record<string, number>
  maxLen: { read: number; write: number }
  maxInflight: { read: number; write: number }
  fallocate: { path: string; mode: number; offset: number; length: number }[]
  lseek: { path: string; offset: number; whence: number; result: number }[]
  positions: number[]
}
export type ToChild = { cmd: 'stats' } | { cmd: 'release' } | { cmd: 'unmount' }
export type FromChild =
  | { ev: 'mounted'; conn: unknown; frontend: string }
  | { ev: 'error'; message: string }
  | { ev: 'held'; pos: number }
  | { ev: 'unmounting' }
  | { ev: 'stats'; stats: Stats }

type Cb = (...args: unknown[]) => void
const cfg = JSON.parse(process.argv[2] ?? '{}') as ChildConfig
const send = (m: FromChild): void => void process.send?.(m)
const t0 = new Date()
const stats: Stats = { ops: {}, maxLen: { read: 0, write: 0 }, maxInflight: { read: 0, write: 0 }, fallocate: [], lseek: [], positions: [] }
const inflight = { read: 0, write: 0 }
const held: (() => void)[] = []
const files = new Map(cfg.files.map((f) => [`/${f.name}`, { spec: f, chunks: new Map<number, Buffer>() }]))
const backingFd = cfg.backing ? fs.openSync(cfg.backing, 'r+') : -1
const count = (op: string): void => void (stats.ops[op] = (stats.ops[op] ?? 0) + 1)

function readMem(chunks: Map<number, Buffer>, buf: Buffer, len: number, pos: number): void {
  buf.fill(0, 0, len)
  for (let at = pos; at < pos + len;) {
    const c = Math.floor(at / CHUNK)
    const off = at - c * CHUNK
    const n = Math.min(CHUNK - off, pos + len - at)
    chunks.get(c)?.copy(buf, at - pos, off, off + n)
    at += n
  }
}
function writeMem(chunks: Map<number, Buffer>, buf: Buffer, len: number, pos: number): void {
  for (let at = pos; at < pos + len;) {
    const c = Math.floor(at / CHUNK)
    const off = at - c * CHUNK
    const n = Math.min(CHUNK - off, pos + len - at)
    let chunk = chunks.get(c)
    if (!chunk) chunks.set(c, (chunk = Buffer.alloc(CHUNK)))
    buf.copy(chunk, off, at - pos, at - pos + n)
    at += n
  }
}
function zeroMem(chunks: Map<number, Buffer>, pos: number, len: number): void {
  for (let at = pos; at < pos + len;) {
    const c = Math.floor(at / CHUNK)
    const off = at - c * CHUNK
    const n = Math.min(CHUNK - off, pos + len - at)
    if (n === CHUNK) chunks.delete(c)
    else chunks.get(c)?.fill(0, off, off + n)
    at += n
  }
}

/** Count a data request in flight; answer after deferMs (or when released, for held reads). */
function track(kind: 'read' | 'write', len: number, pos: number, answer: () => void): void {
  count(kind)
  stats.maxLen[kind] = Math.max(stats.maxLen[kind], len)
  if (stats.positions.length < 64) stats.positions.push(pos)
  inflight[kind]++
  stats.maxInflight[kind] = Math.max(stats.maxInflight[kind], inflight[kind])
  const finish = (): void => {
    inflight[kind]--
    answer()
  }
  if (kind === 'read' && cfg.holdReadsAt === pos) {
    held.push(finish)
    send({ ev: 'held', pos })
  } else if (cfg.deferMs) setTimeout(finish, cfg.deferMs)
  else finish()
}

const stat = (f: FileSpec) => ({
  mode: f.mode ?? 0o100644,
  uid: f.uid ?? 0,
  gid: f.gid ?? 0,
  size: f.size,
  nlink: 1,
  blksize: 4096,
  blocks: Math.ceil(f.size / 512),
  atime: t0,
  mtime: t0,
  ctime: t0,
})
const perm = (...args: unknown[]): void => (args[args.length - 1] as Cb)(-E.EPERM)

const ops = {
  getattr: (path: string, cb: Cb) => {
    count('getattr')
    if (path === '/') return cb(0, { mode: 0o40755, nlink: 2, size: 4096, uid: 0, gid: 0, atime: t0, mtime: t0, ctime: t0 })
    const f = files.get(path)
    if (!f) return cb(-E.ENOENT)
    cb(0, stat(f.spec))
  },
  readdir: (path: string, cb: Cb) => {
    count('readdir')
    if (path !== '/') return cb(-E.ENOTDIR)
    cb(
      0,
      [...files.values()].map((f) => f.spec.name),
    )
  },
  open: (path: string, _flags: number, cb: Cb) => {
    count('open')
    cb(files.has(path) ? 0 : -E.ENOENT, 42)
  },
  release: (_path: string, _fd: number, cb: Cb) => cb(0),
  flush: (_path: string, _fd: number, cb: Cb) => cb(0),
  fsync: (_path: string, _datasync: number, _fd: number, cb: Cb) => cb(0),
  read: (path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const f = files.get(path)
    if (!f) return cb(-E.ENOENT)
    if (path === `/${cfg.faulty?.throws}`) throw new Error('a read handler that throws')
    if (path === `/${cfg.faulty?.twice}`) {
      cb(0)
      return cb(-E.EIO)
    }
    const n = Math.max(0, Math.min(len, f.spec.size - pos))
    track('read', len, pos, () => {
      if (backingFd >= 0) fs.readSync(backingFd, buf, 0, n, pos)
      else readMem(f.chunks, buf, n, pos)
      cb(n)
    })
  },
  write: (path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const f = files.get(path)
    if (!f) return cb(-E.ENOENT)
    if (pos >= f.spec.size) return cb(-E.ENOSPC)
    const n = Math.min(len, f.spec.size - pos)
    track('write', len, pos, () => {
      if (backingFd >= 0) fs.writeSync(backingFd, buf, 0, n, pos)
      else writeMem(f.chunks, buf, n, pos)
      cb(n)
    })
  },
  truncate: (path: string, size: number, cb: Cb) => cb(files.get(path)?.spec.size === size ? 0 : -E.EPERM),
  ftruncate: (path: string, _fd: number, size: number, cb: Cb) => cb(files.get(path)?.spec.size === size ? 0 : -E.EPERM),
  chmod: (_p: string, _m: number, cb: Cb) => cb(0),
  chown: (_p: string, _u: number, _g: number, cb: Cb) => cb(0),
  utimens: (_p: string, _a: number, _m: number, cb: Cb) => cb(0),
  create: perm,
  unlink: perm,
  mkdir: perm,
  rmdir: perm,
  rename: perm,
  symlink: perm,
  link: perm,
  mknod: perm,
  statfs: (_path: string, cb: Cb) => {
    let bytes = 0
    for (const f of files.values()) bytes += f.spec.size
    cb(0, {
      bsize: 4096,
      frsize: 4096,
      blocks: Math.ceil(bytes / 4096),
      bfree: 0,
      bavail: 0,
      files: files.size,
      ffree: 0,
      favail: 0,
      namemax: 255,
    })
  },
  fallocate: (path: string, _fd: number, mode: number, offset: number, length: number, cb: Cb) => {
    count('fallocate')
    stats.fallocate.push({ path, mode, offset, length })
    const f = files.get(path)
    if (!f) return cb(-E.ENOENT)
    if (mode & (2 | 16)) zeroMem(f.chunks, offset, Math.min(length, f.spec.size - offset))
    cb(0)
  },
  lseek: (path: string, _fd: number, offset: number, whence: number, cb: Cb) => {
    count('lseek')
    const f = files.get(path)
    if (!f) return cb(-E.ENOENT)
    let result = -E.ENXIO
    if (offset < f.spec.size) {
      const data = (c: number): boolean => f.chunks.has(c)
      let c = Math.floor(offset / CHUNK)
      const last = Math.ceil(f.spec.size / CHUNK)
      if (whence === 3) {
        const found = [...f.chunks.keys()].filter((k) => k >= c).sort((a, b) => a - b)[0]
        if (found !== undefined) result = Math.max(offset, found * CHUNK)
      } else {
        while (c < last && data(c)) c++
        result = Math.min(f.spec.size, Math.max(offset, c * CHUNK))
      }
    }
    stats.lseek.push({ path, offset, whence, result })
    if (result < 0) return cb(result)
    cb(0, result)
  },
}

function main(): void {
  let fuse: { mount(cb: (e: Error | null) => void): void; unmount(cb: (e: Error | null) => void): void }
  let conn: unknown = null
  if (cfg.frontend === 'fuse3') {
    const f3 = new Fuse3(cfg.mnt, ops, { ...cfg.fuse3, options: cfg.options ?? ['fsname=vstor', 'subtype=vstor', 'allow_other'] })
    fuse = f3
    conn = () => f3.conn
  } else {
    fuse = makeFuse(cfg.mnt, ops, cfg.options ?? [])
  }
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    send({ ev: 'unmounting' })
    fuse.unmount(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('message', (m: ToChild) => {
    if (m.cmd === 'stats') send({ ev: 'stats', stats })
    else if (m.cmd === 'release') held.splice(0).forEach((f) => f())
    else if (m.cmd === 'unmount') stop()
  })
  fuse.mount((err) => {
    if (err) {
      send({ ev: 'error', message: err.message })
      process.exit(1)
    }
    send({ ev: 'mounted', conn: typeof conn === 'function' ? (conn as () => unknown)() : null, frontend: cfg.frontend })
  })
}

main()
