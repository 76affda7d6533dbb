import { test } from 'node:test'
import assert from 'node:assert/strict'
import { VstorError } from '../../src/errors'
import { Flag, NO_DEVICE, Table } from '../../src/table/table'
import { M, ext } from './fixtures'

const inv = (vstart: number, length: number) => ext(vstart, length, NO_DEVICE, 0, Flag.Invalid)

function throwsCode(fn: () => unknown, code: string, what?: RegExp, label?: string): void {
  assert.throws(
    fn,
    (e: unknown) => {
      assert.ok(e instanceof VstorError, `${label ?? ''}: expected a VstorError, got ${String(e)}`)
      assert.equal(e.code, code, label)
      if (what) assert.match(e.message, what, label)
      return true
    },
    label,
  )
}

test('a new table is one NO_DEVICE extent, Invalid unless told otherwise', () => {
  const t = new Table(8 * M)
  assert.equal(t.count, 1)
  assert.deepEqual(t.get(0), inv(0, 8 * M))
  assert.equal(t.generation, 0)
  assert.equal(t.allocated(), 0)
  assert.deepEqual(new Table(8 * M, undefined, 7, Flag.Zero).get(0), ext(0, 8 * M, NO_DEVICE, 0, Flag.Zero))
  assert.equal(new Table(8 * M, undefined, 7).generation, 7)
})

test('find() at the edges of every extent', () => {
  const t = new Table(4 * M, [ext(0, M, 1, M), ext(M, 2 * M, 2, M), inv(3 * M, M)])
  const cases: [number, number][] = [
    [0, 0],
    [M - 1, 0],
    [M, 1],
    [3 * M - 1, 1],
    [3 * M, 2],
    [4 * M - 1, 2],
  ]
  for (const [off, i] of cases) assert.equal(t.find(off), i, `find(${off})`)
  for (const bad of [-1, 4 * M, 5 * M, NaN]) throwsCode(() => t.find(bad), 'BAD_ARGUMENT', /outside the disk/)
  assert.equal(t.length(1), 2 * M)
  assert.equal(t.end(1), 3 * M)
  assert.equal(t.pstart(1), M)
  assert.equal(t.device(2), NO_DEVICE)
  assert.equal(t.flags(2), Flag.Invalid)
})

test('the constructor merges contiguous pieces, sorts, and zeroes pstart of NO_DEVICE extents', () => {
  const t = new Table(6 * M, [ext(2 * M, M, 1, 5 * M), ext(0, 2 * M, 1, 3 * M), ext(3 * M, 3 * M, NO_DEVICE, 99, Flag.Zero)])
  assert.deepEqual(t.all(), [ext(0, 3 * M, 1, 3 * M), ext(3 * M, 3 * M, NO_DEVICE, 0, Flag.Zero)])
  // Same device but not contiguous, or other flags: no merge.
  const u = new Table(3 * M, [ext(0, M, 1, M), ext(M, M, 1, 5 * M), ext(2 * M, M, 1, 6 * M, Flag.NoWrite)])
  assert.equal(u.count, 3)
  u.assertInvariant()
})

test('bad input is refused', () => {
  const cases: [string, () => unknown][] = [
    ['gap', () => new Table(3 * M, [ext(0, M, 1, M), ext(2 * M, M, 1, M)])],
    ['overlap', () => new Table(3 * M, [ext(0, 2 * M, 1, M), ext(M, 2 * M, 2, M)])],
    ['zero length', () => new Table(2 * M, [ext(0, 0, 1, M), ext(0, 2 * M, 1, M)])],
    ['past the end', () => new Table(2 * M, [ext(0, 3 * M, 1, M)])],
    ['short of the end', () => new Table(2 * M, [ext(0, M, 1, M)])],
    ['bad device', () => new Table(M, [ext(0, M, -2, 0)])],
    ['bad flags', () => new Table(M, [ext(0, M, 1, M, 32)])],
    ['fractional offset', () => new Table(M, [ext(0, M - 0.5, 1, M), ext(M - 0.5, 0.5, 1, 2 * M)])],
    ['size 0', () => new Table(0)],
    ['negative pstart', () => new Table(M, [ext(0, M, 1, -M)])],
  ]
  for (const [what, fn] of cases) throwsCode(fn, 'BAD_ARGUMENT', undefined, what)
  const t = new Table(4 * M)
  throwsCode(() => t.plan(M, 3 * M, [ext(M, M, 1, M)]), 'BAD_ARGUMENT', /not covered/)
  throwsCode(() => t.plan(M, 3 * M, [ext(M, 2 * M, 1, M), ext(2 * M, M, 1, M)]), 'BAD_ARGUMENT', /overlaps|past the end/)
  throwsCode(() => t.plan(2 * M, 2 * M, []), 'BAD_ARGUMENT', /empty or outside/)
  throwsCode(() => t.plan(3 * M, 5 * M, [ext(3 * M, 2 * M, 1, M)]), 'BAD_ARGUMENT', /outside the disk/)
  throwsCode(() => t.planFlags(0, M, Flag.Zero, Flag.Zero), 'BAD_ARGUMENT', /both set and cleared/)
  throwsCode(() => t.planFlags(0, M, 32, 0), 'BAD_ARGUMENT')
  throwsCode(() => t.get(1), 'BAD_ARGUMENT')
  assert.equal(t.generation, 0, 'failed plans do not change the table')
})

test('plan splits the edge extent, is pure, and apply() performs it', () => {
  const t = new Table(10 * M, [ext(0, 10 * M, 1, M)], 5)
  const c = t.plan(2 * M, 3 * M, [ext(2 * M, M, 2, 7 * M)])
  assert.deepEqual(t.all(), [ext(0, 10 * M, 1, M)], 'plan must not change the table')
  assert.equal(t.generation, 5)
  // The whole old extent is replaced; the pieces outside [2M, 3M) keep their device offsets.
  assert.deepEqual(c, { start: 0, end: 10 * M, extents: [ext(0, 2 * M, 1, M), ext(2 * M, M, 2, 7 * M), ext(3 * M, 7 * M, 1, 4 * M)] })
  t.apply(c)
  assert.equal(t.generation, 6)
  assert.deepEqual(t.all(), c.extents)
  t.apply(t.plan(2 * M, 3 * M, [ext(2 * M, M, 1, 3 * M)]), 42)
  assert.deepEqual(t.all(), [ext(0, 10 * M, 1, M)], 'restoring the mapping merges back into one extent')
  assert.equal(t.generation, 42)
  t.assertInvariant()
})

test('plan swallows neighbours it merges with and leaves the rest out of the change', () => {
  const t = new Table(8 * M, [ext(0, M, 3, M), ext(M, 2 * M, 1, M), inv(3 * M, 2 * M), ext(5 * M, 3 * M, 1, 5 * M)])
  const c = t.plan(3 * M, 5 * M, [ext(3 * M, 2 * M, 1, 3 * M)])
  assert.deepEqual(c, { start: M, end: 8 * M, extents: [ext(M, 7 * M, 1, M)] })
  t.apply(c)
  assert.deepEqual(t.all(), [ext(0, M, 3, M), ext(M, 7 * M, 1, M)])
  assert.equal(t.allocated(), 8 * M)
  const same = t.plan(2 * M, 4 * M, t.slice(2 * M, 4 * M))
  assert.deepEqual(same, { start: 2 * M, end: 2 * M, extents: [] })
  t.apply(same)
  assert.equal(t.count, 2)
})

test('planFlags sets and clears flags; setting Zero discards the mapping', () => {
  const t = new Table(4 * M, [ext(0, 4 * M, 1, M)])
  t.apply(t.planFlags(M, 2 * M, Flag.NoWrite, 0))
  assert.deepEqual(t.all(), [ext(0, M, 1, M), ext(M, M, 1, 2 * M, Flag.NoWrite), ext(2 * M, 2 * M, 1, 3 * M)])
  t.apply(t.planFlags(0, 4 * M, 0, Flag.NoWrite))
  assert.deepEqual(t.all(), [ext(0, 4 * M, 1, M)])
  const discard = t.planFlags(M, 3 * M, Flag.Zero, 0)
  assert.deepEqual(t.released(discard), [ext(M, 2 * M, 1, 2 * M)], 'the caller frees these units')
  t.apply(discard)
  assert.deepEqual(t.all(), [ext(0, M, 1, M), ext(M, 2 * M, NO_DEVICE, 0, Flag.Zero), ext(3 * M, M, 1, 4 * M)])
  assert.equal(t.allocated(), 2 * M)
  t.assertInvariant()
})

test('released() lists only units the change stops using', () => {
  const t = new Table(4 * M, [ext(0, 4 * M, 1, M)])
  // Move [M, 2M) elsewhere on device 1 and [2M, 3M) onto the unit [M, 2M) used to have.
  const c = t.plan(M, 3 * M, [ext(M, M, 1, 9 * M), ext(2 * M, M, 1, 2 * M)])
  assert.deepEqual(t.released(c), [ext(2 * M, M, 1, 3 * M)])
})

test('apply() splits at non-edges and re-merges at both seams (agent side)', () => {
  const t = new Table(6 * M, [ext(0, 6 * M, 2, M)])
  t.apply({ start: 2 * M, end: 4 * M, extents: [ext(3 * M, M, NO_DEVICE, 0, Flag.Invalid), ext(2 * M, M, NO_DEVICE, 0, Flag.Invalid)] })
  assert.deepEqual(t.all(), [ext(0, 2 * M, 2, M), inv(2 * M, 2 * M), ext(4 * M, 2 * M, 2, 5 * M)])
  t.apply({ start: 2 * M, end: 4 * M, extents: [ext(2 * M, M, 2, 3 * M), ext(3 * M, M, 2, 4 * M)] })
  assert.deepEqual(t.all(), [ext(0, 6 * M, 2, M)])
  assert.equal(t.generation, 2)
  t.assertInvariant()
})

test('the table grows and shrinks its arrays across many splices', () => {
  const t = new Table(1024 * M, [ext(0, 1024 * M, 1, M)])
  for (let u = 0; u < 1024; u += 2) t.apply(t.plan(u * M, (u + 1) * M, [ext(u * M, M, 2, u * M + M)]))
  assert.equal(t.count, 1024)
  t.assertInvariant()
  t.apply(t.plan(0, 1024 * M, [ext(0, 1024 * M, NO_DEVICE, 0, Flag.Zero)]))
  assert.equal(t.count, 1)
  t.assertInvariant()
  assert.equal(t.find(1024 * M - 1), 0)
})

test('offsets of 2^44 and 2^50 bytes stay exact', () => {
  const big = 2 ** 50 + 4 * M
  const t = new Table(big, [inv(0, 2 ** 50), ext(2 ** 50, 4 * M, 7, 2 ** 44 + M)])
  assert.equal(t.find(2 ** 50 - 1), 0)
  assert.equal(t.find(2 ** 50), 1)
  const c = t.plan(2 ** 50 + M, 2 ** 50 + 2 * M, [ext(2 ** 50 + M, M, 7, 2 ** 44 + 9 * M)])
  t.apply(c)
  assert.deepEqual(t.slice(2 ** 50, big), [
    ext(2 ** 50, M, 7, 2 ** 44 + M),
    ext(2 ** 50 + M, M, 7, 2 ** 44 + 9 * M),
    ext(2 ** 50 + 2 * M, 2 * M, 7, 2 ** 44 + 3 * M),
  ])
  const i = t.find(2 ** 50 + 3 * M + 5)
  assert.equal(t.pstart(i) + (2 ** 50 + 3 * M + 5 - t.vstart(i)), 2 ** 44 + 4 * M + 5)
  assert.deepEqual(Table.fromBuffer(big, Table.encode(t), 3).all(), t.all())
  assert.equal(t.allocated(), 4 * M)
  t.assertInvariant()
})

test('assertInvariant detects each kind of corruption', () => {
  type Raw = { vs: Float64Array; ps: Float64Array; dev: Int32Array; fl: Uint8Array; n: number }
  const make = () => {
    const t = new Table(4 * M, [ext(0, M, 1, M), ext(M, 2 * M, 2, M), inv(3 * M, M)])
    return { t, raw: t as unknown as Raw }
  }
  const corruptions: [string, (r: Raw, t: Table) => void, RegExp][] = [
    ['gap/overlap', (r) => (r.vs[1] = r.vs[2]!), /empty/],
    ['wrong end', (r) => (r.vs[3] = 5 * M), /ends at/],
    ['first start', (r) => (r.vs[0] = 1), /starts at/],
    ['mergeable', (r) => ((r.dev[1] = 1), (r.ps[1] = 2 * M)), /merged/],
    ['pstart on NO_DEVICE', (r) => (r.ps[2] = M), /no device/],
    ['bad flags', (r) => (r.fl[0] = 64), /flags/],
    ['bad device', (r) => (r.dev[0] = -5), /device/],
    ['fractional pstart', (r) => (r.ps[0] = 0.5), /pstart/],
    ['generation', (_r, t) => (t.generation = -1), /generation/],
  ]
  for (const [what, corrupt, msg] of corruptions) {
    const { t, raw } = make()
    t.assertInvariant()
    corrupt(raw, t)
    throwsCode(() => t.assertInvariant(), 'INTERNAL', msg, what)
  }
})

test('clone() is independent of the original', () => {
  const t = new Table(4 * M, [ext(0, 4 * M, 1, M)], 3)
  const c = t.clone()
  t.apply(t.planFlags(0, M, Flag.Error, 0))
  assert.deepEqual(c.all(), [ext(0, 4 * M, 1, M)])
  assert.equal(c.generation, 3)
  c.apply(c.planFlags(0, 4 * M, Flag.NoWrite, 0))
  assert.equal(t.flags(1), 0)
})
