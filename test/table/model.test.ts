// Randomized test of the extent table against a naive per-unit model.
// Table A goes through plan() + apply() (the controller); table B applies
// A's changes after an encode/decode round trip (the agent) or raw,
// unnormalized changes directly (apply must split and re-merge itself).
// Set TABLE_SEED to replay a failure.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Flag, NO_DEVICE, Table, type Change, type Extent } from '../../src/table/table'

const U = 2 ** 20

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Unit {
  dev: number
  p: number // physical byte offset of the unit's first byte (0 when NO_DEVICE)
  fl: number
}

function same(a: Unit, b: Unit): boolean {
  return a.dev === b.dev && a.p === b.p && a.fl === b.fl
}

function joins(a: Unit, b: Unit): boolean {
  return a.fl === b.fl && a.dev === b.dev && (a.dev === NO_DEVICE || a.p + U === b.p)
}

function run(seed: number, ops: number, units: number, base: number, pbase: number): void {
  const rnd = mulberry32(seed)
  const int = (n: number) => Math.floor(rnd() * n)
  const size = base + units * U
  const A = new Table(size)
  const B = A.clone()
  const model: Unit[] = Array.from({ length: units }, () => ({ dev: NO_DEVICE, p: 0, fl: Flag.Invalid }))

  const check = (t: Table, name: string) => {
    t.assertInvariant()
    for (let u = 0; u < units; u++) {
      for (const off of u % 2 ? [0, U - 1] : [int(U)]) {
        const x = base + u * U + off
        const i = t.find(x)
        assert.ok(t.vstart(i) <= x && x < t.end(i), `${name}: find(${x}) gave extent ${i} not containing it`)
        const m = model[u]!
        const got = { dev: t.device(i), p: t.device(i) === NO_DEVICE ? 0 : t.pstart(i) + (x - t.vstart(i)) - off, fl: t.flags(i) }
        if (!same(got, m)) assert.deepEqual(got, m, `${name}: unit ${u} (offset ${off}) resolves wrongly`)
      }
    }
    let runs = 1
    for (let u = 1; u < units; u++) if (!joins(model[u - 1]!, model[u]!)) runs++
    if (base > 0 && !same(model[0]!, { dev: NO_DEVICE, p: 0, fl: Flag.Invalid })) runs++
    assert.equal(t.count, runs, `${name}: ${t.count} extents, the model has ${runs} runs (merges missing or wrong)`)
    assert.equal(t.allocated(), model.filter((m) => m.dev !== NO_DEVICE).length * U, `${name}: allocated()`)
  }

  // The change must be whole current extents, and its first and last extents must actually differ.
  const minimal = (c: Change, before: Unit[]) => {
    if (c.extents.length === 0) {
      assert.deepEqual(before, model, 'an empty change, yet the model changed')
      return
    }
    const i = A.find(c.start)
    const j = A.find(c.end - 1)
    assert.equal(A.vstart(i), c.start, 'change.start is not an extent edge')
    assert.equal(A.end(j), c.end, 'change.end is not an extent edge')
    assert.notDeepEqual(A.get(i), c.extents[0], 'the change starts with an extent that does not change')
    assert.notDeepEqual(A.get(j), c.extents[c.extents.length - 1], 'the change ends with an extent that does not change')
    for (let u = 0; u < units; u++) {
      const x = base + u * U
      if (x < c.start || x >= c.end) assert.ok(same(before[u]!, model[u]!), `unit ${u} changed outside the change`)
    }
  }

  for (let op = 0; op < ops; op++) {
    const a = int(units)
    const b = a + 1 + int(Math.min(units - a, 1 + int(12)))
    const start = base + a * U
    const end = base + b * U
    const before = model.map((m) => ({ ...m }))
    const kind = int(10)
    let change: Change
    let raw: Extent[] | null = null
    if (kind < 5) {
      // Map [a, b) to 1-3 runs of random devices; often contiguous with the left neighbour or the previous run.
      raw = []
      let u = a
      let prev: Unit | null = a > 0 && model[a - 1]!.dev !== NO_DEVICE && rnd() < 0.4 ? model[a - 1]! : null
      while (u < b) {
        const len = Math.min(b - u, 1 + int(b - a))
        const fl = rnd() < 0.7 ? 0 : Flag.NoWrite
        const dev = prev && rnd() < 0.6 ? prev.dev : 1 + int(3)
        const p = prev && dev === prev.dev && rnd() < 0.7 ? prev.p + U : pbase + int(64) * U
        for (let k = 0; k < len; k++) model[u + k] = { dev, p: p + k * U, fl }
        // Hand the run over in 1-2 pieces so normalize() has merging to do.
        const cut = len > 1 && rnd() < 0.5 ? 1 + int(len - 1) : len
        raw.push({ vstart: base + u * U, length: cut * U, device: dev, pstart: p, flags: fl })
        if (cut < len) raw.push({ vstart: base + (u + cut) * U, length: (len - cut) * U, device: dev, pstart: p + cut * U, flags: fl })
        prev = model[u + len - 1]!
        u += len
      }
      if (rnd() < 0.3) raw.reverse()
      change = A.plan(start, end, raw)
    } else if (kind < 8) {
      const set = int(16)
      const clear = int(16) & ~set
      for (let u = a; u < b; u++) {
        const m = model[u]!
        model[u] = set & Flag.Zero ? { dev: NO_DEVICE, p: 0, fl: (m.fl | set) & ~clear } : { ...m, fl: (m.fl | set) & ~clear }
      }
      change = A.planFlags(start, end, set, clear)
    } else if (kind < 9) {
      for (let u = a; u < b; u++) model[u] = { dev: NO_DEVICE, p: 0, fl: Flag.Invalid }
      raw = [{ vstart: start, length: end - start, device: NO_DEVICE, pstart: 0, flags: Flag.Invalid }]
      change = A.plan(start, end, raw)
    } else {
      change = A.plan(start, end, A.slice(start, end)) // no-op
      assert.equal(change.extents.length, 0, 'replanning the current content must give an empty change')
    }
    minimal(change, before)
    A.apply(change)
    assert.equal(A.generation, op + 1)
    if (raw && rnd() < 0.5) B.apply({ start, end, extents: raw }, A.generation)
    else B.apply({ start: change.start, end: change.end, extents: Table.decodeExtents(Table.encode(change.extents)) }, A.generation)
    check(A, 'A')
    check(B, 'B')
    if (op % 250 === 0) {
      assert.deepEqual(Table.fromBuffer(size, Table.encode(A), 1).all(), A.all())
      assert.deepEqual(A.clone().all(), A.all())
    }
  }
}

const seeds = process.env.TABLE_SEED ? [Number(process.env.TABLE_SEED)] : [1, 0xdecaf, Date.now() % 2 ** 31]

for (const seed of seeds) {
  test(`table matches the per-unit model (seed ${seed})`, () => {
    try {
      run(seed, 2000, 40, 0, 2 ** 20)
    } catch (e) {
      console.error(`model test failed with TABLE_SEED=${seed}`)
      throw e
    }
  })
}

test('table matches the model at 2^50 disk offsets and 2^44 device offsets', () => {
  const seed = seeds[0]!
  try {
    run(seed, 1000, 24, 2 ** 50, 2 ** 44)
  } catch (e) {
    console.error(`model test failed with TABLE_SEED=${seed}`)
    throw e
  }
})
