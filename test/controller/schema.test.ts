import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Db } from '../../src/controller/db'
import { APPLICATION_ID, MIGRATIONS, openDatabase } from '../../src/controller/schema'
import { runController } from '../../src/controller/index'
import { VstorError } from '../../src/errors'
import { tempDir } from './util'

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    assert.ok(e instanceof VstorError, String(e))
    return e.code
  }
  assert.fail('expected a VstorError')
}

test('migrations run on an empty data dir: tables, version, application id, controller id', async (t) => {
  const dir = path.join(tempDir(t), 'nested', 'data')
  const db = await openDatabase(dir)
  try {
    assert.equal((fs.statSync(dir).mode & 0o777).toString(8), '700')
    const v = await db.get<{ user_version: number }>('PRAGMA user_version')
    assert.equal(v?.user_version, MIGRATIONS.length)
    const app = await db.get<{ application_id: number }>('PRAGMA application_id')
    assert.equal(app?.application_id, APPLICATION_ID)
    const tables = (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")).map((r) => r.name)
    assert.deepEqual(tables, ['agents', 'devices', 'dirty', 'disks', 'extents', 'jobs', 'meta', 'quarantine', 'shared', 'sqlite_sequence'])
    const id = await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'controller_id'")
    assert.match(id?.value ?? '', /^[0-9a-f-]{36}$/)
    const mode = await db.get<{ journal_mode: string }>('PRAGMA journal_mode')
    assert.equal(mode?.journal_mode, 'wal')
  } finally {
    await db.close()
  }
  // reopening keeps the same controller id (no second migration)
  const db2 = await openDatabase(dir)
  const rows = await db2.all("SELECT * FROM meta WHERE key = 'controller_id'")
  assert.equal(rows.length, 1)
  await db2.close()
})

test('a file of random bytes is refused with DB_CORRUPT naming the file', async (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(path.join(dir, 'vstor.db'), crypto.randomBytes(64 * 1024))
  const err = await openDatabase(dir).catch((e: unknown) => e)
  assert.ok(err instanceof VstorError)
  assert.equal(err.code, 'DB_CORRUPT')
  assert.match(err.message, /vstor\.db/)
  assert.match(err.message, /restore it from backup/)
})

test('an SQLite file with a damaged page is refused with DB_CORRUPT', async (t) => {
  const dir = tempDir(t)
  const db = await openDatabase(dir)
  await db.exec('PRAGMA journal_mode = DELETE')
  await db.exec('CREATE TABLE junk (x)')
  await db.tx(async () => {
    for (let i = 0; i < 200; i++) await db.run('INSERT INTO junk VALUES (?)', [crypto.randomBytes(500).toString('hex')])
  })
  await db.close()
  const file = path.join(dir, 'vstor.db')
  const buf = fs.readFileSync(file)
  crypto.randomBytes(4096).copy(buf, 4096 * 3)
  fs.writeFileSync(file, buf)
  assert.equal(await code(openDatabase(dir)), 'DB_CORRUPT')
})

test('a database from a newer vstor is refused with DB_VERSION', async (t) => {
  const dir = tempDir(t)
  await (await openDatabase(dir)).close()
  const db = await Db.open(path.join(dir, 'vstor.db'))
  await db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`)
  await db.close()
  const err = await openDatabase(dir).catch((e: unknown) => e)
  assert.ok(err instanceof VstorError)
  assert.equal(err.code, 'DB_VERSION')
  assert.match(err.message, /newer vstor/)
  // runController refuses too, without listening
  const socket = path.join(dir, 's.sock')
  assert.equal(await code(runController({ socket, dataDir: dir })), 'DB_VERSION')
  assert.equal(fs.existsSync(socket), false)
})

test('an SQLite file of another application is refused', async (t) => {
  const dir = tempDir(t)
  const db = await Db.open(path.join(dir, 'vstor.db'))
  await db.exec('CREATE TABLE other (x); PRAGMA user_version = 1')
  await db.close()
  assert.equal(await code(openDatabase(dir)), 'DB_CORRUPT')
})

test('overlapping extents on a device refuse the start with DB_CORRUPT', async (t) => {
  const dir = tempDir(t)
  const db = await openDatabase(dir)
  await db.run(
    "INSERT INTO devices (id, name, path, uuid, kind, size, data_start, health, errors, created_at) VALUES (1, 'dev0', '/x', 'u1', 'file', ?, ?, 'ok', 0, 'now')",
    [64 * 2 ** 20, 2 ** 20],
  )
  await db.run(
    "INSERT INTO disks (id, name, size, thin, generation, created_at, uid) VALUES (1, 'a', ?, 0, 1, 'now', 'ua'), (2, 'b', ?, 0, 1, 'now', 'ub')",
    [2 ** 20, 2 ** 20],
  )
  await db.run('INSERT INTO extents VALUES (1, 0, ?, 1, ?, 0), (2, 0, ?, 1, ?, 0)', [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20])
  await db.close()
  const err = await runController({ socket: path.join(dir, 's.sock'), dataDir: dir }).catch((e: unknown) => e)
  assert.ok(err instanceof VstorError)
  assert.equal(err.code, 'DB_CORRUPT')
  assert.match(err.message, /overlap/)
})

test('a second controller on the same data dir is refused while the first holds the database', async (t) => {
  const dir = tempDir(t)
  const db = await openDatabase(dir)
  try {
    assert.equal(await code(openDatabase(dir)), 'CONTROLLER_RUNNING')
  } finally {
    await db.close()
  }
  await (await openDatabase(dir)).close()
})
