// One controller per data dir. The lock is an SQLite file of its own
// (<data-dir>/controller.lock) held in exclusive locking mode: the kernel
// drops its fcntl lock when the process dies, so a kill -9 never leaves a
// stale lock, and vstor.db itself stays in normal WAL locking so
// `sqlite3 vstor.db .backup` and `vstor controller backup` can read it online.
// Invariant: while a DataDirLock is held, no other process holds one on the
// same directory; release() is idempotent.

import path from 'node:path'
import { Db } from './db'
import { VstorError } from '../errors'

export class DataDirLock {
  private constructor(private db: Db | null) {}

  static async acquire(dataDir: string): Promise<DataDirLock> {
    const file = path.join(dataDir, 'controller.lock')
    let db: Db
    try {
      db = await Db.open(file)
    } catch (e) {
      throw new VstorError('START_FAILED', `cannot open the lock file ${file}: ${(e as Error).message}`)
    }
    try {
      await db.exec('PRAGMA journal_mode = DELETE; PRAGMA locking_mode = EXCLUSIVE; PRAGMA busy_timeout = 0')
      // The first write takes the exclusive lock; exclusive locking mode keeps it until close.
      await db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (pid INTEGER); DELETE FROM held; COMMIT')
      await db.run('INSERT INTO held (pid) VALUES (?)', [process.pid])
    } catch (e) {
      await db.close().catch(() => undefined)
      if ((e as { code?: string }).code === 'SQLITE_BUSY') {
        throw new VstorError(
          'CONTROLLER_RUNNING',
          `another controller already uses ${dataDir} (it holds ${file}): stop it first (\`vstor controller stop\`) or use another --data-dir`,
        )
      }
      throw new VstorError('START_FAILED', `cannot lock ${file}: ${(e as Error).message}`)
    }
    return new DataDirLock(db)
  }

  async release(): Promise<void> {
    const db = this.db
    this.db = null
    if (db) await db.close().catch(() => undefined)
  }
}
