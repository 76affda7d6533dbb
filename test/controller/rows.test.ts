import assert from 'node:assert/strict'
import { test } from 'node:test'
import { openDatabase } from '../../src/controller/schema'
import { cutRows } from '../../src/controller/rows'
import { tempDir } from './util'

/** A seeded generator, so a failure repeats. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

test('cutRows leaves exactly the parts of the rows outside the cut, other columns kept, without reading', async (t) => {
  const db = await openDatabase(tempDir(t))
  t.after(() => db.close())
  await db.exec('PRAGMA foreign_keys = OFF')
  const r = rng(7)
  // the model: per device, one refs value per unit (0: no row)
  const model = new Map<number, number[]>([
    [1, new Array<number>(200).fill(0)],
    [2, new Array<number>(200).fill(0)],
  ])
  for (const [dev, units] of model) {
    let p = 0
    while (p < 200) {
      const len = 1 + r(15)
      const end = Math.min(200, p + len)
      if (r(3) > 0) {
        const refs = 2 + r(3)
        await db.run('INSERT INTO shared (device_id, pstart, length, refs) VALUES (?, ?, ?, ?)', [dev, p, end - p, refs])
        units.fill(refs, p, end)
      }
      p = end + r(3)
    }
  }
  for (let round = 0; round < 200; round++) {
    const dev = 1 + r(2)
    const start = r(200)
    const end = start + 1 + r(40)
    const { get, all } = db
    db.get = db.all = () => assert.fail('cutRows read')
    try {
      await db.tx(() => cutRows(db, 'shared', dev, start, end))
    } finally {
      Object.assign(db, { get, all })
    }
    model.get(dev)!.fill(0, start, Math.min(end, 200))
    const rows = await db.all<{ device_id: number; pstart: number; length: number; refs: number }>(
      'SELECT device_id, pstart, length, refs FROM shared ORDER BY device_id, pstart',
    )
    for (const [d, units] of model) {
      const got = new Array<number>(200).fill(0)
      let last = -1
      for (const row of rows.filter((x) => x.device_id === d)) {
        assert.ok(row.length > 0 && row.pstart >= last, `round ${round}: rows stay disjoint and non-empty`)
        got.fill(row.refs, row.pstart, row.pstart + row.length)
        last = row.pstart + row.length
      }
      assert.deepEqual(got, units, `round ${round}: device ${d} after cutting [${start}, ${end}) of device ${dev}`)
    }
  }
})
