// The SQLite file: opening, checking and migrating it.
// Invariants: PRAGMA user_version = number of migrations applied; each
// migration runs in its own transaction; application_id marks our files.
// A file we cannot trust is refused (DB_CORRUPT / DB_VERSION), never repaired.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { VstorError } from '../errors'
import { Db } from './db'
import { DataDirLock } from './lock'

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
  // 2: disk identity, agents, space safety (quarantine, dirty), shared extents, jobs.
  //  - disks.uid: random per disk, so an fd bound to a deleted disk never reaches a new one of that name;
  //    origin/readonly for snapshots and clones.
  //  - agents: every agent that ever loaded a table, until an admin forgets it (epoch fences it).
  //  - quarantine: space freed at `generation`, unusable until every known agent acked it.
  //  - dirty: a superset of the free space that may still hold old bytes (scrubbed in the background).
  //  - shared: reference counts of physical ranges mapped by two or more extents (absent = one owner).
  `ALTER TABLE disks ADD COLUMN uid TEXT NOT NULL DEFAULT '';
   UPDATE disks SET uid = lower(hex(randomblob(16)));
   ALTER TABLE disks ADD COLUMN origin TEXT;
   ALTER TABLE disks ADD COLUMN readonly INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE disks ADD COLUMN devices TEXT;
   ALTER TABLE devices ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
   CREATE TABLE agents (
     id TEXT PRIMARY KEY, mountpoint TEXT NOT NULL, epoch INTEGER NOT NULL, generation INTEGER NOT NULL,
     open_disks TEXT NOT NULL DEFAULT '[]', forgotten INTEGER NOT NULL DEFAULT 0,
     first_seen TEXT NOT NULL, last_seen TEXT NOT NULL);
   CREATE TABLE quarantine (
     device_id INTEGER NOT NULL REFERENCES devices(id), pstart INTEGER NOT NULL, length INTEGER NOT NULL,
     generation INTEGER NOT NULL, PRIMARY KEY (device_id, pstart)) WITHOUT ROWID;
   CREATE TABLE dirty (
     device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE, pstart INTEGER NOT NULL,
     length INTEGER NOT NULL, PRIMARY KEY (device_id, pstart)) WITHOUT ROWID;
   CREATE TABLE shared (
     device_id INTEGER NOT NULL REFERENCES devices(id), pstart INTEGER NOT NULL, length INTEGER NOT NULL,
     refs INTEGER NOT NULL CHECK (refs >= 2), PRIMARY KEY (device_id, pstart)) WITHOUT ROWID;
   CREATE TABLE jobs (
     id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, disk TEXT, device TEXT, params TEXT NOT NULL,
     state TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
     checkpoint TEXT NOT NULL DEFAULT '{}', error TEXT, stats TEXT NOT NULL DEFAULT '{}',
     created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
   INSERT INTO meta (key, value) VALUES ('space_tracked', '0');`,
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
  fs.chmodSync(dataDir, 0o700) // the database names every device and disk: root only
  const file = dbFile(dataDir)
  checkHeader(file)
  const lock = await DataDirLock.acquire(dataDir)
  let db: Db
  try {
    db = await Db.open(file)
  } catch (e) {
    await lock.release()
    throw corrupt(file, (e as Error).message)
  }
  db.onClose(() => lock.release())
  try {
    await verify(db, file)
    await migrate(db, file)
    await db.exec('PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000')
    for (const f of [file, `${file}-wal`, `${file}-shm`, path.join(dataDir, 'controller.lock')]) {
      if (fs.existsSync(f)) fs.chmodSync(f, 0o600)
    }
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
    // normal locking: readers (online backups) may open the file; lock.ts keeps other controllers out
    await db.exec('PRAGMA journal_mode = WAL; BEGIN IMMEDIATE; COMMIT')
    check = await db.get<{ quick_check: string }>('PRAGMA quick_check')
  } catch (e) {
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
