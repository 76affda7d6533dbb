// `vstor controller backup FILE`: a consistent online copy of the database
// through SQLite's backup API. Invariants: the copy is written to a temp file
// beside FILE (mode 0600) and renamed into place only when complete, so FILE
// is either the old file or a whole new copy; the copy passes quick_check;
// the copy says its free space is untracked, so a restore treats it as dirty.

import fs from 'node:fs/promises'
import path from 'node:path'
import { VstorError } from '../errors'
import type { Ctx } from './context'
import { Db } from './db'
import { log } from './log'

export async function backup(ctx: Ctx, params: { path: string }): Promise<{ path: string; bytes: number }> {
  const dest = path.resolve(params.path)
  const dir = path.dirname(dest)
  const st = await fs.stat(dir).catch(() => null)
  if (!st?.isDirectory()) throw new VstorError('BAD_ARGUMENT', `cannot write the backup to ${dest}: ${dir} is not a directory`)
  if (dest === path.resolve(ctx.database)) throw new VstorError('BAD_ARGUMENT', 'the backup must not overwrite the live database')
  const tmp = `${dest}.tmp-${process.pid}`
  await fs.rm(tmp, { force: true })
  const old = process.umask(0o077)
  try {
    // Under the lock: no commit lands half-way (the backup API would restart on one anyway).
    await ctx.state.lock.run(() => ctx.state.db.backup(tmp))
    const check = await Db.open(tmp)
    try {
      // Restored, this copy cannot know what disks created after it wrote to space it calls free:
      // marked untracked, its free space is all dirty at start (zeroed before anyone maps it).
      await check.run("UPDATE meta SET value = '0' WHERE key = 'space_tracked'")
      const r = await check.get<{ quick_check: string }>('PRAGMA quick_check')
      if (r?.quick_check !== 'ok') throw new Error(`the copy failed quick_check: ${r?.quick_check ?? 'no answer'}`)
    } finally {
      await check.close()
    }
    await fs.chmod(tmp, 0o600)
    await fs.rename(tmp, dest)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e instanceof VstorError ? e : new VstorError('BAD_ARGUMENT', `backup to ${dest} failed: ${(e as Error).message}`)
  } finally {
    process.umask(old)
  }
  const bytes = (await fs.stat(dest)).size
  log(`database backed up to ${dest} (${bytes} bytes)`)
  return { path: dest, bytes }
}
