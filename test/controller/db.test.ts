import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Db, type SqlParam } from '../../src/controller/db'
import { inline } from '../../src/controller/sqltext'
import { VstorError } from '../../src/errors'
import { tempDir } from './util'

async function open(t: import('node:test').TestContext): Promise<Db> {
  const db = await Db.open(path.join(tempDir(t), 'x.db'))
  t.after(() => db.close())
  await db.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v)')
  return db
}

/** Counts the statements and scripts that reach sqlite3 (each is one trip to its thread, or more). */
function trips(db: Db): { n: number } {
  const raw = (db as unknown as { db: Record<string, (...a: unknown[]) => unknown> }).db
  const count = { n: 0 }
  for (const m of ['exec', 'run', 'get', 'all', 'prepare']) {
    const f = raw[m]!.bind(raw)
    raw[m] = (...a: unknown[]) => {
      count.n++
      return f(...a)
    }
  }
  return count
}

test('queued writes of a transaction reach SQLite as one script, after BEGIN and before COMMIT', async (t) => {
  const db = await open(t)
  const c = trips(db)
  await db.tx(async () => {
    for (let k = 0; k < 20; k++) await db.queue('INSERT INTO t (k, v) VALUES (?, ?)', [k, `v${k}`])
  })
  assert.equal(c.n, 1)
  assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 20)
  // a lazy one too (its synchronous level goes back to FULL after it: one more trip)
  c.n = 0
  await db.tx(() => db.queue('DELETE FROM t WHERE k < 10'), { durable: false })
  assert.equal(c.n, 2)
  assert.equal((await db.get<{ synchronous: number }>('PRAGMA synchronous'))?.synchronous, 2)
})

test('a read inside a transaction sees the writes queued before it', async (t) => {
  const db = await open(t)
  const seen = await db.tx(async () => {
    await db.queue('INSERT INTO t (k, v) VALUES (1, ?)', ['a'])
    await db.queue('UPDATE t SET v = ? WHERE k = 1', ['b'])
    return (await db.get<{ v: string }>('SELECT v FROM t WHERE k = 1'))?.v
  })
  assert.equal(seen, 'b')
})

test('a queued write that fails rolls the whole transaction back, and the connection goes on', async (t) => {
  const db = await open(t)
  await db.run('INSERT INTO t (k, v) VALUES (1, ?)', ['old'])
  const err = await db
    .tx(async () => {
      await db.queue('UPDATE t SET v = ? WHERE k = 1', ['new'])
      await db.queue('INSERT INTO t (k, v) VALUES (1, ?)', ['dup']) // primary key taken
    })
    .catch((e: unknown) => e)
  assert.match(String(err), /UNIQUE constraint failed/)
  assert.equal((await db.get<{ v: string }>('SELECT v FROM t WHERE k = 1'))?.v, 'old')
  await db.tx(() => db.queue('INSERT INTO t (k, v) VALUES (2, ?)', ['next']))
  assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 2)
})

test('a write queued by work that outlived its transaction runs on its own, not lost', async (t) => {
  const db = await open(t)
  let later!: Promise<void>
  const ran = new Promise<void>((r) => {
    void db.tx(async () => {
      await db.queue('INSERT INTO t (k, v) VALUES (1, ?)', ['in'])
      setImmediate(() => {
        later = db.queue('INSERT INTO t (k, v) VALUES (2, ?)', ['after']) // the transaction committed by now
        r()
      })
    })
  })
  await ran
  await later
  assert.deepEqual(await db.all('SELECT k, v FROM t ORDER BY k'), [
    { k: 1, v: 'in' },
    { k: 2, v: 'after' },
  ])
})

test('parameters written into the text store what bound parameters store', async (t) => {
  const db = await open(t)
  const values: SqlParam[] = [
    null,
    0,
    -7,
    2 ** 53 - 1,
    16 * 2 ** 40 + 2 ** 20,
    1.5,
    "it's",
    '?',
    'two ?? marks',
    '"quoted"',
    'ünïcødé ✓',
    '',
    '{"a":[1,"b\'c"]}',
  ]
  await db.tx(async () => {
    for (const [i, v] of values.entries()) {
      await db.queue('INSERT INTO t (k, v) VALUES (?, ?)', [i, v])
      await db.run('INSERT INTO t (k, v) VALUES (?, ?)', [1000 + i, v])
    }
  })
  const rows = await db.all<{ k: number; v: SqlParam; ty: string }>('SELECT k, v, typeof(v) AS ty FROM t ORDER BY k')
  for (const [i, v] of values.entries()) {
    const a = rows.find((r) => r.k === i)
    const b = rows.find((r) => r.k === 1000 + i)
    assert.equal(a?.v, v, `value ${JSON.stringify(v)} written into the text`)
    assert.equal(b?.v, v, `value ${JSON.stringify(v)} bound`)
    assert.equal(a?.ty, typeof v === 'string' ? 'text' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : 'real')
  }
})

test('inline refuses what it cannot write exactly', () => {
  const code = (f: () => unknown): string => {
    try {
      f()
    } catch (e) {
      assert.ok(e instanceof VstorError)
      return e.code
    }
    return 'none'
  }
  assert.equal(
    code(() => inline('SELECT ?', [NaN])),
    'INTERNAL',
  )
  assert.equal(
    code(() => inline('SELECT ?', [Infinity])),
    'INTERNAL',
  )
  assert.equal(
    code(() => inline('SELECT ?', ['a\0b'])),
    'INTERNAL',
  )
  assert.equal(
    code(() => inline('SELECT ?, ?', [1])),
    'INTERNAL',
  )
  assert.equal(
    code(() => inline('SELECT ?', [1, 2])),
    'INTERNAL',
  )
  assert.equal(inline('SELECT \'?\', ?, "?"', ["x'y"]), "SELECT '?', 'x''y', \"?\"")
  assert.equal(inline('SELECT ?', [2 ** 60]), 'SELECT 1152921504606846976')
})

test('checkpoint() copies the WAL into the database once enough commits went into it, and not before', async (t) => {
  const db = await open(t)
  const main = (): number => fs.statSync(db.file).size
  const big = 'x'.repeat(3000) // about a page per row
  for (let k = 0; k < 10; k++) await db.tx(() => db.queue('INSERT INTO t (k, v) VALUES (?, ?)', [k, big]))
  const before = main()
  await db.checkpoint()
  assert.equal(main(), before, 'too few commits: nothing copied yet')
  for (let k = 10; k < 40; k++) await db.tx(() => db.queue('INSERT INTO t (k, v) VALUES (?, ?)', [k, big]))
  assert.equal(main(), before, 'the rows are in the WAL only')
  await db.checkpoint()
  assert.ok(main() >= before + 40 * 3000, `the database file holds the rows now (${before} -> ${main()} bytes)`)
})
