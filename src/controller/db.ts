// Promisified wrapper over one sqlite3 connection.
// Invariant: transactions never interleave on the connection: tx() holds an
// async mutex from BEGIN IMMEDIATE to COMMIT/ROLLBACK; a backup holds it too.

import sqlite3 from 'sqlite3'
import { Mutex } from './mutex'

export type SqlParam = string | number | null
export interface RunResult {
  changes: number
  lastID: number
}

/** sqlite3's Backup object (its .d.ts does not declare it). */
interface SqliteBackup {
  step(pages: number, cb: (err: Error | null) => void): void
  finish(cb?: () => void): void
  readonly completed: boolean
  readonly failed: boolean
}

export class Db {
  private readonly txLock = new Mutex()

  private constructor(
    private readonly db: sqlite3.Database,
    readonly file: string,
  ) {}

  static open(file: string): Promise<Db> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE, (err) => {
        if (err) reject(err)
        else resolve(new Db(db, file))
      })
    })
  }

  run(sql: string, params: SqlParam[] = []): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err)
        else resolve({ changes: this.changes, lastID: this.lastID })
      })
    })
  }

  get<T>(sql: string, params: SqlParam[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.db.get(sql, params, (err: Error | null, row: T | undefined) => (err ? reject(err) : resolve(row)))
    })
  }

  all<T>(sql: string, params: SqlParam[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.db.all(sql, params, (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows)))
    })
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (err: Error | null) => (err ? reject(err) : resolve()))
    })
  }

  /** A commit made with `durable: false` is not yet known to be on disk. */
  private lazyCommits = false

  /**
   * Run fn inside BEGIN IMMEDIATE … COMMIT; ROLLBACK if it throws.
   * `durable: false` commits without an fsync (WAL with synchronous=NORMAL:
   * consistent after a crash, but the newest commits may be lost on power
   * failure) until the next barrier() or durable commit.
   */
  tx<T>(fn: () => Promise<T>, opts: { durable?: boolean } = {}): Promise<T> {
    const durable = opts.durable ?? true
    return this.txLock.run(async () => {
      if (!durable) await this.exec('PRAGMA synchronous = NORMAL')
      try {
        await this.exec('BEGIN IMMEDIATE')
        try {
          const r = await fn()
          await this.exec('COMMIT')
          // A durable commit fsyncs the WAL, and with it every lazy commit before it.
          this.lazyCommits = !durable
          return r
        } catch (e) {
          await this.exec('ROLLBACK').catch(() => undefined)
          throw e
        }
      } finally {
        if (!durable) await this.exec('PRAGMA synchronous = FULL')
      }
    })
  }

  /**
   * Make every commit so far durable: one fsync'd write transaction, only when a lazy commit is
   * pending (checked again once it holds the transaction lock: barriers that waited behind one
   * another, or behind a durable commit, find nothing left to sync and commit nothing).
   */
  async barrier(): Promise<void> {
    if (!this.lazyCommits) return
    await this.tx(async () => {
      if (this.lazyCommits) await this.run("UPDATE meta SET value = value WHERE key = 'generation'")
    })
  }

  private closers: (() => Promise<void>)[] = []

  /** Run fn after the connection closed (the data-dir lock goes with the database). */
  onClose(fn: () => Promise<void>): void {
    this.closers.push(fn)
  }

  async close(): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())))
    } finally {
      for (const fn of this.closers.splice(0)) await fn()
    }
  }

  /**
   * Online copy to `dest` through SQLite's backup API. Under the transaction lock: a step while
   * this connection is inside another caller's BEGIN IMMEDIATE … COMMIT fails with SQLITE_BUSY.
   */
  backup(dest: string): Promise<void> {
    return this.txLock.run(() => this.backupNow(dest))
  }

  private backupNow(dest: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const src = this.db as unknown as { backup(dest: string, cb: (err: Error | null) => void): SqliteBackup }
      const b = src.backup(dest, (err: Error | null) => {
        if (err) return reject(err)
        const step = (): void =>
          b.step(-1, (e: Error | null) => {
            if (e) return b.finish(() => reject(e))
            if (b.completed || b.failed) return b.finish(() => (b.failed ? reject(new Error('backup failed')) : resolve()))
            setImmediate(step)
          })
        step()
      })
    })
  }
}
