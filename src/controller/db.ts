// Promisified wrapper over one sqlite3 connection.
// Invariant: transactions never interleave on the connection: tx() holds an
// async mutex from BEGIN IMMEDIATE to COMMIT/ROLLBACK.

import sqlite3 from 'sqlite3'
import { Mutex } from './mutex'

export type SqlParam = string | number | null
export interface RunResult {
  changes: number
  lastID: number
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

  /** Run fn inside BEGIN IMMEDIATE … COMMIT; ROLLBACK if it throws. */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.txLock.run(async () => {
      await this.exec('BEGIN IMMEDIATE')
      try {
        const r = await fn()
        await this.exec('COMMIT')
        return r
      } catch (e) {
        await this.exec('ROLLBACK').catch(() => undefined)
        throw e
      }
    })
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())))
  }
}
