// Promisified wrapper over one sqlite3 connection.
// Invariant: transactions never interleave on the connection: tx() holds an
// async mutex from BEGIN IMMEDIATE to COMMIT/ROLLBACK; a backup holds it too.

import { AsyncLocalStorage } from 'node:async_hooks'
import sqlite3 from 'sqlite3'
import { Mutex } from './mutex'
import { inline } from './sqltext'

/** Commits between two checkpoint()s that do something (a move's chunk makes 2-3). */
const CHECKPOINT_AFTER = 16

/** A transaction's statements not yet sent, as text; closed once it committed or rolled back. */
interface Script {
  sql: string[]
  closed: boolean
}

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

  async run(sql: string, params: SqlParam[] = []): Promise<RunResult> {
    await this.flush()
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err)
        else resolve({ changes: this.changes, lastID: this.lastID })
      })
    })
  }

  async get<T>(sql: string, params: SqlParam[] = []): Promise<T | undefined> {
    await this.flush()
    return new Promise((resolve, reject) => {
      this.db.get(sql, params, (err: Error | null, row: T | undefined) => (err ? reject(err) : resolve(row)))
    })
  }

  async all<T>(sql: string, params: SqlParam[] = []): Promise<T[]> {
    await this.flush()
    return new Promise((resolve, reject) => {
      this.db.all(sql, params, (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows)))
    })
  }

  async exec(sql: string): Promise<void> {
    await this.flush()
    return this.send(sql)
  }

  private send(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (err: Error | null) => (err ? reject(err) : resolve()))
    })
  }

  /** A commit made with `durable: false` is not yet known to be on disk. */
  private lazyCommits = false
  /** The transaction the caller runs in (set by tx() for its fn and everything fn awaits). */
  private readonly open = new AsyncLocalStorage<Script>()

  /**
   * A write whose result nobody reads. Inside a transaction it waits, as text (sqltext.ts), to go
   * to SQLite with the transaction's next statement that returns something, or with its COMMIT: one
   * trip to SQLite's thread for the lot, and none of the main thread's wakeups between statements.
   * Its error, if any, comes from that statement or from tx(). Outside a transaction it runs now.
   */
  async queue(sql: string, params: SqlParam[] = []): Promise<void> {
    const t = this.open.getStore()
    if (t && !t.closed) t.sql.push(inline(sql, params))
    else await this.run(sql, params) // also work that outlived its transaction (a timer set inside it)
  }

  /** Send what this caller's transaction queued (BEGIN first), before a statement that returns something. */
  private async flush(): Promise<void> {
    const t = this.open.getStore()
    if (t && !t.closed && t.sql.length) await this.send(t.sql.splice(0).join(';\n'))
  }

  /**
   * Run fn inside BEGIN IMMEDIATE … COMMIT; ROLLBACK if it throws. BEGIN goes out with the first
   * statement, so a transaction of queued writes only is one script.
   * `durable: false` commits without an fsync (WAL with synchronous=NORMAL:
   * consistent after a crash, but the newest commits may be lost on power
   * failure) until the next barrier() or durable commit. The caller resumes once COMMIT is done;
   * the next transaction waits until synchronous is FULL again.
   */
  tx<T>(fn: () => Promise<T>, opts: { durable?: boolean } = {}): Promise<T> {
    const durable = opts.durable ?? true
    return new Promise<T>((resolve, reject) => {
      void this.txLock.run(async () => {
        // each transaction sets its level (a restore after a lazy one that failed cannot linger)
        const script: Script = { sql: [`PRAGMA synchronous = ${durable ? 'FULL' : 'NORMAL'}`, 'BEGIN IMMEDIATE'], closed: false }
        try {
          const r = await this.open.run(script, async () => {
            const r = await fn()
            script.closed = true // from here a write queued by work fn left behind runs on its own
            await this.send([...script.sql, 'COMMIT'].join(';\n'))
            return r
          })
          // A durable commit fsyncs the WAL, and with it every lazy commit before it.
          this.lazyCommits = !durable
          this.uncheckpointed++
          resolve(r)
        } catch (e) {
          script.closed = true
          await this.send('ROLLBACK').catch(() => undefined) // none open when BEGIN never went out
          reject(e)
        } finally {
          // statements outside transactions are durable again (the next durable transaction sets it anyway)
          if (!durable) await this.send('PRAGMA synchronous = FULL').catch(() => undefined)
        }
      })
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
      if (this.lazyCommits) await this.queue("UPDATE meta SET value = value WHERE key = 'generation'")
    })
  }

  /** Commits since the last checkpoint() (SQLite's own count is of WAL pages, which it does not expose). */
  private uncheckpointed = 0

  /**
   * Copy the WAL into the database (a PASSIVE checkpoint) once CHECKPOINT_AFTER commits went into
   * it. A caller whose next commits must be quick (a move, between chunks) calls this where a
   * wait does not matter: SQLite's automatic checkpoint runs inside whichever COMMIT takes the WAL
   * past 1000 pages, and under load that COMMIT took 30-90 ms instead of 1-3 (its fsyncs wait
   * behind the I/O).
   */
  async checkpoint(): Promise<void> {
    if (this.uncheckpointed < CHECKPOINT_AFTER) return
    await this.txLock.run(async () => {
      this.uncheckpointed = 0
      await this.send('PRAGMA wal_checkpoint(PASSIVE)')
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
