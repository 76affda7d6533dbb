// One request from the addon's descriptor → the fuse-native-shaped handler(s) → one reply.
//
// Invariants: every request is answered exactly once (a handler calling back twice, or throwing
// after it answered, changes nothing: the addon refuses a second reply for the same id); a
// handler that throws before answering gets EIO; a missing handler behaves as with fuse-native
// (ENOSYS for namespace/data ops the kernel can do without, defaults for the rest).

import os from 'node:os'
import { F, OP, SC, SET, type Fuse3Addon, type Handle } from './fuse3-abi'
import { DEFAULT_ROOT, direntType, toErrno, writeStat, writeStatfs, type Fuse3Handlers, type StatLike } from './fuse3-handlers'

const E = os.constants.errno
const UNSET = 0xffffffff // chown: leave this id alone (as libfuse passes (uid_t)-1)

export interface Ctx {
  addon: Fuse3Addon
  h: Handle
  ops: Fuse3Handlers
  scratch: Float64Array
  slot(i: number): Buffer
}

/** Run fn; if it throws, answer EIO (unless answered) and rethrow later as a warning. */
function guard(c: Ctx, id: number, fn: () => void): void {
  try {
    fn()
  } catch (e) {
    c.addon.reply(c.h, id, E.EIO)
    process.emitWarning(`vstor fuse3: a handler threw: ${(e as Error)?.stack ?? String(e)}`)
  }
}

/** getattr(path) → attributes in scratch → then(). */
function withAttr(c: Ctx, id: number, path: string, then: () => void): void {
  const done = (err: number, st?: StatLike): void => {
    const e = toErrno(err)
    if (e) return void c.addon.reply(c.h, id, e)
    writeStat(c.scratch, st)
    then()
  }
  if (c.ops.getattr) c.ops.getattr(path, done)
  else if (path === '/') done(0, DEFAULT_ROOT)
  else done(-E.ENOENT)
}

const replyErr =
  (c: Ctx, id: number) =>
  (err: number): void =>
    void c.addon.reply(c.h, id, toErrno(err))

/** A namespace op that creates an entry: run it, then answer with the new entry's attributes. */
function entryAfter(c: Ctx, id: number, path: string, run: ((cb: (err: number) => void) => void) | undefined): void {
  if (!run) return void c.addon.reply(c.h, id, E.ENOSYS)
  run((err) => {
    const e = toErrno(err)
    if (e) return void c.addon.reply(c.h, id, e)
    withAttr(c, id, path, () => c.addon.replyEntry(c.h, id))
  })
}

function setattr(c: Ctx, id: number, path: string, d: Float64Array, o: number): void {
  const bits = d[o + F.A]!
  const fh = d[o + F.FH]!
  const ops = c.ops
  const steps: ((next: (err: number) => void) => void)[] = []
  if (bits & SET.MODE && ops.chmod) steps.push((next) => ops.chmod!(path, d[o + F.LEN]!, next))
  if (bits & (SET.UID | SET.GID) && ops.chown) {
    const uid = bits & SET.UID ? d[o + F.B]! : UNSET
    const gid = bits & SET.GID ? d[o + F.C]! : UNSET
    steps.push((next) => ops.chown!(path, uid, gid, next))
  }
  if (bits & SET.SIZE) {
    const size = d[o + F.OFF]!
    if (bits & SET.FH_SET && ops.ftruncate) steps.push((next) => ops.ftruncate!(path, fh, size, next))
    else if (ops.truncate) steps.push((next) => ops.truncate!(path, size, next))
  }
  if (bits & (SET.ATIME | SET.MTIME) && ops.utimens) {
    let atime = d[o + F.D]!
    let mtime = d[o + F.E]!
    // Only one of the two changes: keep the other as the file has it.
    if ((bits & (SET.ATIME | SET.MTIME)) !== (SET.ATIME | SET.MTIME)) {
      steps.push((next) =>
        withAttr(c, id, path, () => {
          if (!(bits & SET.ATIME)) atime = c.scratch[SC.ATIME]!
          if (!(bits & SET.MTIME)) mtime = c.scratch[SC.MTIME]!
          next(0)
        }),
      )
    }
    steps.push((next) => ops.utimens!(path, atime, mtime, next))
  }
  let i = 0
  const next = (err: number): void => {
    const e = toErrno(err)
    if (e) return void c.addon.reply(c.h, id, e)
    const step = steps[i++]
    if (step) return step(next)
    withAttr(c, id, path, () => c.addon.replyAttr(c.h, id))
  }
  next(0)
}

/** Answer the request at descriptor offset o. path: the request's inode path. */
export function dispatch(c: Ctx, d: Float64Array, o: number, path: string, strs: string[] | undefined): void {
  const id = d[o + F.ID]!
  guard(c, id, () => run(c, id, d, o, path, strs))
}

function run(c: Ctx, id: number, d: Float64Array, o: number, path: string, strs: string[] | undefined): void {
  const { addon, h, ops } = c
  const fh = d[o + F.FH]!
  const name = strs?.[d[o + F.NAME]!] ?? ''
  const name2 = strs?.[d[o + F.NAME2]!] ?? ''
  const err = replyErr(c, id)
  switch (d[o + F.OP]) {
    case OP.READ: {
      const len = d[o + F.LEN]!
      if (!ops.read) return void addon.replyRead(h, id, 0)
      const buf = c.slot(d[o + F.SLOT]!).subarray(0, len)
      return ops.read(path, fh, buf, len, d[o + F.OFF]!, (n) =>
        typeof n === 'number' && n >= 0 ? addon.replyRead(h, id, n) : addon.reply(h, id, toErrno(n)),
      )
    }
    case OP.WRITE: {
      const len = d[o + F.LEN]!
      if (!ops.write) return void addon.reply(h, id, E.ENOSYS)
      const buf = c.slot(d[o + F.SLOT]!).subarray(0, len)
      return ops.write(path, fh, buf, len, d[o + F.OFF]!, (n) =>
        typeof n === 'number' && n >= 0 ? addon.replyWrite(h, id, n) : addon.reply(h, id, toErrno(n)),
      )
    }
    case OP.LOOKUP:
      return withAttr(c, id, name, () => addon.replyEntry(h, id))
    case OP.GETATTR:
      return withAttr(c, id, path, () => addon.replyAttr(h, id))
    case OP.SETATTR:
      return setattr(c, id, path, d, o)
    case OP.READDIR: {
      if (!ops.readdir) return void addon.replyReaddir(h, id, [])
      return ops.readdir(path, (e, names, stats) => {
        if (toErrno(e)) return err(e)
        addon.replyReaddir(h, id, names ?? [], stats?.map(direntType))
      })
    }
    case OP.OPEN: {
      if (!ops.open) return void addon.replyOpen(h, id, 0)
      return ops.open(path, d[o + F.A]!, (e, fd) => {
        if (toErrno(e)) return err(e)
        if (!addon.replyOpen(h, id, fd ?? 0)) ops.release?.(path, fd ?? 0, () => {})
      })
    }
    case OP.CREATE: {
      if (!ops.create) return void addon.reply(h, id, E.ENOSYS)
      return ops.create(name, d[o + F.A]!, (e, fd) => {
        if (toErrno(e)) return err(e)
        withAttr(c, id, name, () => {
          if (!addon.replyCreate(h, id, fd ?? 0)) ops.release?.(name, fd ?? 0, () => {})
        })
      })
    }
    case OP.RELEASE:
      return ops.release ? ops.release(path, fh, err) : err(0)
    case OP.FLUSH:
      return ops.flush ? ops.flush(path, fh, err) : err(0)
    case OP.FSYNC:
      return ops.fsync ? ops.fsync(path, d[o + F.A]!, fh, err) : err(0)
    case OP.STATFS: {
      const reply = (e: number, st?: Parameters<typeof writeStatfs>[1]): void => {
        if (toErrno(e)) return err(e)
        writeStatfs(c.scratch, st)
        addon.replyStatfs(h, id)
      }
      return ops.statfs ? ops.statfs(path, reply) : reply(0, {})
    }
    case OP.FALLOCATE:
      if (!ops.fallocate) return err(-E.EOPNOTSUPP)
      return ops.fallocate(path, fh, d[o + F.A]!, d[o + F.OFF]!, d[o + F.LEN]!, err)
    case OP.LSEEK:
      if (!ops.lseek) return err(-E.ENOSYS)
      return ops.lseek(path, fh, d[o + F.OFF]!, d[o + F.A]!, (e, off) =>
        toErrno(e) || typeof off !== 'number' ? err(e || -E.EIO) : void addon.replyLseek(h, id, off),
      )
    case OP.MKNOD:
      return entryAfter(c, id, name, ops.mknod && ((cb) => ops.mknod!(name, d[o + F.A]!, d[o + F.B]!, cb)))
    case OP.MKDIR:
      return entryAfter(c, id, name, ops.mkdir && ((cb) => ops.mkdir!(name, d[o + F.A]!, cb)))
    case OP.SYMLINK:
      return entryAfter(c, id, name, ops.symlink && ((cb) => ops.symlink!(name2, name, cb)))
    case OP.LINK:
      return entryAfter(c, id, name, ops.link && ((cb) => ops.link!(name2, name, cb)))
    case OP.UNLINK:
      return ops.unlink ? ops.unlink(name, err) : err(-E.ENOSYS)
    case OP.RMDIR:
      return ops.rmdir ? ops.rmdir(name, err) : err(-E.ENOSYS)
    case OP.RENAME:
      if (d[o + F.A]) return err(-E.EINVAL) // RENAME_NOREPLACE/EXCHANGE: not in fuse-native's shape
      return ops.rename ? ops.rename(name, name2, err) : err(-E.ENOSYS)
    case OP.READLINK:
      if (!ops.readlink) return err(-E.ENOSYS)
      return ops.readlink(path, (e, target) => (toErrno(e) ? err(e) : void addon.replyReadlink(h, id, target ?? '')))
    default:
      return err(-E.ENOSYS)
  }
}
