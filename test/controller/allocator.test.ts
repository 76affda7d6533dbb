import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Allocator } from '../../src/controller/allocator'
import { RunSet } from '../../src/controller/runs'
import { VstorError } from '../../src/errors'
import { NO_DEVICE } from '../../src/table/table'

const M = 2 ** 20
const T = 2 ** 40
const span = (device: number, pstart: number, length: number) => ({ device, pstart, length })

test('best fit picks the smallest clean run that holds the request', () => {
  const a = new Allocator()
  a.addDevice(1, M, 11 * M, false)
  a.addDevice(2, M, 5 * M, false)
  assert.deepEqual(a.allocate(3 * M), [{ device: 2, pstart: M, length: 3 * M, dirty: false }])
  a.take([span(1, 2 * M, 2 * M)]) // device 1 free: [1,2) [4,11)
  assert.deepEqual(a.allocate(M), [{ device: 1, pstart: M, length: M, dirty: false }])
  assert.deepEqual(a.runs(1), [
    { start: M, end: 2 * M },
    { start: 4 * M, end: 11 * M },
  ])
})

test('clean space is preferred; dirty space is handed out tagged, so it is zeroed before it is mapped', () => {
  const a = new Allocator()
  a.addDevice(1, M, 9 * M, true) // a new device: dirty until scrubbed
  a.addDevice(2, M, 3 * M, false)
  assert.deepEqual(a.allocate(2 * M), [{ device: 2, pstart: M, length: 2 * M, dirty: false }])
  assert.deepEqual(a.allocate(4 * M), [{ device: 1, pstart: M, length: 4 * M, dirty: true }])
  // spanning: clean first, then dirty
  assert.deepEqual(a.allocate(9 * M), [
    { device: 2, pstart: M, length: 2 * M, dirty: false },
    { device: 1, pstart: M, length: 7 * M, dirty: true },
  ])
  a.markClean(1, 2 * M, 4 * M)
  assert.equal(a.dirtyBytes(1), 6 * M)
  assert.equal(a.freeBytes(1), 8 * M)
  // take() takes across the clean/dirty seam; give() returns space as dirty
  a.take([span(1, M, 4 * M)])
  assert.equal(a.freeBytes(1), 4 * M)
  a.give([span(1, M, 4 * M)], true)
  assert.equal(a.dirtyBytes(1), 8 * M)
})

test('spanning takes the largest runs first; NO_SPACE says need and free', () => {
  const a = new Allocator()
  a.addDevice(1, M, 4 * M, false)
  a.addDevice(2, M, 6 * M, false)
  assert.deepEqual(a.allocate(7 * M), [
    { device: 2, pstart: M, length: 5 * M, dirty: false },
    { device: 1, pstart: M, length: 2 * M, dirty: false },
  ])
  assert.deepEqual(a.allocate(M, [1]), [{ device: 1, pstart: M, length: M, dirty: false }])
  const e = (() => {
    try {
      a.allocate(9 * M)
    } catch (err) {
      return err
    }
  })()
  assert.ok(e instanceof VstorError)
  assert.equal(e.code, 'NO_SPACE')
  assert.match(e.message, /need 9M.*8M free.*vstor device add/)
})

test('give merges with both neighbours; double use and double free are refused; offsets past 2^32 and 16 TiB work', () => {
  const a = new Allocator()
  a.addDevice(7, M, 20 * T, false)
  a.take([span(7, M, 16 * T), span(NO_DEVICE, 0, 5)])
  assert.equal(a.freeBytes(7), 4 * T - M)
  assert.throws(() => a.take([span(7, 5 * T, M)]), /not free/)
  a.give([span(7, 5 * T, M)], false)
  a.give([span(7, 5 * T + 2 * M, M)], false)
  assert.equal(a.runs(7).length, 3)
  a.give([span(7, 5 * T + M, M)], false)
  assert.deepEqual(a.runs(7)[0], { start: 5 * T, end: 5 * T + 3 * M })
  assert.throws(() => a.give([span(7, 5 * T + M, M)], true), /freed twice/)
  assert.equal(a.freeBytes(7), 4 * T - M + 3 * M)
})

test('RunSet: overlap clips to the range; remove must lie inside one run', () => {
  const r = new RunSet()
  r.add(1, 0, 10)
  r.add(1, 20, 30)
  assert.deepEqual(r.overlap(1, 5, 25), [
    { start: 5, end: 10 },
    { start: 20, end: 25 },
  ])
  assert.equal(r.covers(1, 2, 8), true)
  assert.equal(r.covers(1, 8, 22), false)
  assert.throws(() => r.remove(1, 8, 22), /not in the set/)
  r.remove(1, 2, 8)
  assert.deepEqual(r.runs(1), [
    { start: 0, end: 2 },
    { start: 8, end: 10 },
    { start: 20, end: 30 },
  ])
  r.add(1, 10, 20)
  assert.deepEqual(r.runs(1), [
    { start: 0, end: 2 },
    { start: 8, end: 30 },
  ])
})

test('RunSet.removeSorted takes many sorted ranges in one pass and refuses a byte that is not free', () => {
  const r = new RunSet()
  r.add(1, 0, 100)
  r.add(1, 200, 300)
  r.removeSorted(1, [
    { start: 0, end: 10 },
    { start: 10, end: 20 },
    { start: 50, end: 60 },
    { start: 200, end: 300 },
  ])
  assert.deepEqual(r.runs(1), [
    { start: 20, end: 50 },
    { start: 60, end: 100 },
  ])
  assert.throws(() => r.removeSorted(1, [{ start: 90, end: 110 }]), /not in the set/)
  assert.throws(() => r.removeSorted(1, [{ start: 55, end: 58 }]), /not in the set/)
  const big = new RunSet()
  big.add(2, 0, 2e6 * 2)
  const ranges = Array.from({ length: 1e6 }, (_, i) => ({ start: i * 4, end: i * 4 + 2 }))
  big.removeSorted(2, ranges)
  assert.equal(big.bytes(2), 2e6 * 2 - 2e6)
})
