import { test } from 'node:test'
import assert from 'node:assert/strict'
import { VstorError } from '../../src/errors'
import { Flag, NO_DEVICE, Table, type Extent } from '../../src/table/table'
import { M, ext } from './fixtures'

function badFrame(buf: Buffer, what: RegExp, label: string): void {
  for (const decode of [() => Table.decodeExtents(buf), () => Table.fromBuffer(4 * M, buf, 1)]) {
    assert.throws(
      decode,
      (e: unknown) => e instanceof VstorError && e.code === 'BAD_FRAME' && what.test(e.message),
      `${label}: expected BAD_FRAME matching ${what}`,
    )
  }
}

const sample = [
  ext(0, M, 3, 2 ** 44 + M, Flag.NoWrite),
  ext(M, 2 * M, NO_DEVICE, 0, Flag.Zero),
  ext(3 * M, M, 2 ** 31 - 1, M, Flag.Error | Flag.Invalid),
]

test('extents and tables round-trip through the binary form', () => {
  const buf = Table.encode(sample)
  assert.equal(buf.length, 16 + 21 * sample.length)
  assert.equal(buf.toString('latin1', 0, 4), 'VTB1')
  assert.equal(buf.readUInt32LE(4), 3)
  assert.deepEqual(Table.decodeExtents(buf), sample)
  const t = Table.fromBuffer(4 * M, buf, 9)
  assert.deepEqual(t.all(), sample)
  assert.equal(t.generation, 9)
  t.assertInvariant()
  assert.deepEqual(Table.encode(t), buf, 'a table encodes like its extent list')
  // A change (not starting at 0) and an empty change round-trip too.
  const change = [ext(2 ** 50, M, 1, 2 ** 44), ext(2 ** 50 + M, 5, 1, 7)]
  assert.deepEqual(Table.decodeExtents(Table.encode(change)), change)
  assert.deepEqual(Table.decodeExtents(Table.encode([])), [])
})

test('decoding works from an unaligned buffer offset', () => {
  const enc = Table.encode(sample)
  const big = Buffer.alloc(enc.length + 3)
  enc.copy(big, 3)
  assert.deepEqual(Table.decodeExtents(big.subarray(3)), sample)
})

test('fromBuffer merges mergeable neighbours and builds a working table', () => {
  const buf = Table.encode([ext(0, M, 1, M), ext(M, M, 1, 2 * M), ext(2 * M, 2 * M, NO_DEVICE, 0, Flag.Invalid)])
  const t = Table.fromBuffer(4 * M, buf, 1)
  assert.deepEqual(t.all(), [ext(0, 2 * M, 1, M), ext(2 * M, 2 * M, NO_DEVICE, 0, Flag.Invalid)])
  t.apply(t.plan(2 * M, 3 * M, [ext(2 * M, M, 1, 3 * M)]))
  assert.deepEqual(t.all(), [ext(0, 3 * M, 1, M), ext(3 * M, M, NO_DEVICE, 0, Flag.Invalid)])
  // A merge early on, then several extents that must move down; NO_DEVICE pstart becomes 0.
  const odd = [ext(0, M, 1, M), ext(M, M, 1, 2 * M), ext(2 * M, M, 2, M), ext(3 * M, M, NO_DEVICE, 77, 0), ext(4 * M, M, 2, 9 * M)]
  const u = Table.fromBuffer(5 * M, Table.encode(odd), 1)
  assert.deepEqual(u.all(), [ext(0, 2 * M, 1, M), ext(2 * M, M, 2, M), ext(3 * M, M, NO_DEVICE, 0, 0), ext(4 * M, M, 2, 9 * M)])
  u.assertInvariant()
})

test('garbage is rejected with BAD_FRAME', () => {
  const good = Table.encode(sample)
  badFrame(good.subarray(0, good.length - 1), /does not match its count/, 'truncated')
  badFrame(good.subarray(0, 5), /too short/, 'header cut')
  badFrame(Buffer.concat([good, Buffer.alloc(1)]), /does not match its count/, 'trailing byte')
  const magic = Buffer.from(good)
  magic.write('VTB2', 0, 'latin1')
  badFrame(magic, /magic/, 'wrong magic')
  const count = Buffer.from(good)
  count.writeUInt32LE(0xffffffff, 4)
  badFrame(count, /does not match its count/, 'count too large')
  const order = Buffer.from(good)
  order.writeDoubleLE(5 * M, 8 + 8) // vstart[1] past vstart[2]
  badFrame(order, /corrupt/, 'vstart not rising')
  const nan = Buffer.from(good)
  nan.writeDoubleLE(NaN, 8 + 8 * 4) // pstart[0]
  badFrame(nan, /pstart/, 'NaN pstart')
  const flags = Buffer.from(good)
  flags[good.length - 1] = 0x80
  badFrame(flags, /flags/, 'unknown flags')
  const dev = Buffer.from(good)
  dev.writeInt32LE(-7, 8 + 8 * 4 + 8 * 3)
  badFrame(dev, /device/, 'bad device')
})

test('fromBuffer refuses a table that does not cover the disk', () => {
  const buf = Table.encode(sample)
  assert.throws(
    () => Table.fromBuffer(8 * M, buf, 1),
    (e: unknown) => e instanceof VstorError && e.code === 'BAD_FRAME',
  )
  const shifted = Table.encode([ext(M, 4 * M, 1, M)])
  assert.throws(
    () => Table.fromBuffer(4 * M, shifted, 1),
    (e: unknown) => e instanceof VstorError && e.code === 'BAD_FRAME',
  )
  assert.throws(
    () => Table.fromBuffer(4 * M, Table.encode([]), 1),
    (e: unknown) => e instanceof VstorError && e.code === 'BAD_FRAME',
  )
})

test('encode refuses a list with holes', () => {
  assert.throws(
    () => Table.encode([ext(0, M, 1, M), ext(2 * M, M, 1, M)]),
    (e: unknown) => e instanceof VstorError && e.code === 'BAD_ARGUMENT',
  )
})

test('a table of 100k extents survives the round trip', () => {
  const n = 100_000
  const list: Extent[] = []
  for (let i = 0; i < n; i++) list.push(ext(i * M, M, 1 + (i % 5), (2 + 2 * i) * M, i % 3 === 0 ? Flag.NoWrite : 0))
  const t = new Table(n * M, list)
  assert.equal(t.count, n)
  const u = Table.fromBuffer(n * M, Table.encode(t), 2)
  assert.equal(u.count, n)
  for (const i of [0, 1, 4999, n - 1]) assert.deepEqual(u.get(i), t.get(i))
  u.assertInvariant()
})
