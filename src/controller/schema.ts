// The SQLite file: opening, checking and migrating it.
// Invariants: PRAGMA user_version = number of migrations applied; each
// migration runs in its own transaction; application_id marks our files.
// A file we cannot trust is refused (DB_CORRUPT / DB_VERSION), never repaired.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { VstorError } from '../errors'
import { Db } from './db'

/** "VSTR" as a 32-bit integer. */
export const APPLICATION_ID = 0x56535452

const SQLITE_MAGIC = 'SQLite format 3\0'

/** Ordered forward migrations; index i moves user_version i → i+1. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE devices (
     id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL, uuid TEXT NOT NULL UNIQUE,
     kind TEXT NOT NULL, size INTEGER NOT NULL, data_start INTEGER NOT NULL,
     health TEXT NOT NULL DEFAULT 'ok', errors INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
   CREATE TABLE disks (
     id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, thin INTEGER NOT NULL,
     generation INTEGER NOT NULL, created_at TEXT NOT NULL);
   CREATE TABLE extents (
     disk_id INTEGER NOT NULL REFERENCES disks(id) ON DELETE CASCADE, vstart INTEGER NOT NULL,
     length INTEGER NOT NULL, device_id INTEGER REFERENCES devices(id), pstart INTEGER NOT NULL,
     flags INTEGER NOT NULL, PRIMARY KEY (disk_id, vstart)) WITHOUT ROWID;
   CREATE INDEX extents_device ON extents(device_id, pstart);`,
]

export function dbFile(dataDir: string): string {
  return path.join(dataDir, 'vstor.db')
}

function corrupt(file: string, why: string): VstorError {
  return new VstorError('DB_CORRUPT', `database ${file} is unusable (${why}): restore it from backup (see vstor-controller(8))`)
}

/** Open (creating if needed), verify and migrate the database in dataDir. */
export async function openDatabase(dataDir: string): Promise<Db> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const file = dbFile(dataDir)
  checkHeader(file)
  let db: Db
  try {
    db = await Db.open(file)
  } catch (e) {
    throw corrupt(file, (e as Error).message)
  }
  try {
    await verify(db, file)
    await migrate(db, file)
    await db.exec('PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000')
    return db
  } catch (e) {
    await db.close().catch(() => undefined)
    throw e
  }
}

function checkHeader(file: string): void {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
    throw corrupt(file, (e as Error).message)
  }
  try {
    const head = Buffer.alloc(16)
    const n = fs.readSync(fd, head, 0, 16, 0)
    if (n === 0) return
    if (n < 16 || head.toString('latin1') !== SQLITE_MAGIC) throw corrupt(file, 'not an SQLite file')
  } finally {
    fs.closeSync(fd)
  }
}

async function verify(db: Db, file: string): Promise<void> {
  let check: { quick_check: string } | undefined
  try {
    // exclusive: the first write takes a file lock held until close, so a second
    // controller on the same data dir is refused instead of diverging from us
    await db.exec('PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; BEGIN IMMEDIATE; COMMIT')
    check = await db.get<{ quick_check: string }>('PRAGMA quick_check')
  } catch (e) {
    if ((e as { code?: string }).code === 'SQLITE_BUSY') {
      throw new VstorError(
        'CONTROLLER_RUNNING',
        `database ${file} is already in use by another controller: stop it first (\`vstor controller stop\`)`,
      )
    }
    throw corrupt(file, (e as Error).message)
  }
  if (check?.quick_check !== 'ok') throw corrupt(file, `quick_check: ${check?.quick_check ?? 'no answer'}`)
  const app = (await db.get<{ application_id: number }>('PRAGMA application_id'))?.application_id ?? 0
  const version = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? 0
  if (app !== 0 && app !== APPLICATION_ID) throw corrupt(file, `application_id ${app} is not vstor's`)
  if (app === 0 && version !== 0) throw corrupt(file, 'not a vstor database')
  if (version > MIGRATIONS.length) {
    throw new VstorError(
      'DB_VERSION',
      `database ${file} has schema version ${version}, written by a newer vstor (this one knows up to ${MIGRATIONS.length}): upgrade vstor`,
    )
  }
}

async function migrate(db: Db, file: string): Promise<void> {
  let version = (await db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version ?? 0
  if (version === 0) {
    const tables = await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
    if (tables.length > 0) throw corrupt(file, 'an SQLite file with foreign tables')
  }
  for (; version < MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version] as string
    const next = version + 1
    await db.tx(async () => {
      await db.exec(sql)
      if (next === 1) {
        await db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
        await db.run('INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)', ['controller_id', crypto.randomUUID(), 'generation', '0'])
      }
      await db.exec(`PRAGMA user_version = ${next}`)
    })
  }
}
