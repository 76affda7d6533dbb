import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Allocator } from '../../src/controller/allocator'
import { VstorError } from '../../src/errors'
import { NO_DEVICE } from '../../src/table/table'

const M = 2 ** 20
const T = 2 ** 40
const ext = (device: number, pstart: number, length: number) => ({ vstart: 0, length, device, pstart, flags: 0 })

test('best fit picks the smallest run that holds the request', () => {
  const a = new Allocator()
  a.addDevice(1, M, 11 * M)
  a.addDevice(2, M, 5 * M)
  assert.deepEqual(a.allocate(3 * M), [{ device: 2, pstart: M, length: 3 * M }])
  a.reserve([ext(1, 2 * M, 2 * M)]) // device 1 free: [1,2) [4,11)
  assert.deepEqual(a.allocate(M), [{ device: 1, pstart: M, length: M }])
  assert.deepEqual(a.runs(1), [
    { start: M, end: 2 * M },
    { start: 4 * M, end: 11 * M },
  ])
})

test('spanning takes the largest runs first; NO_SPACE says need and free', () => {
  const a = new Allocator()
  a.addDevice(1, M, 4 * M)
  a.addDevice(2, M, 6 * M)
  assert.deepEqual(a.allocate(7 * M), [
    { device: 2, pstart: M, length: 5 * M },
    { device: 1, pstart: M, length: 2 * M },
  ])
  assert.deepEqual(a.allocate(M, [1]), [{ device: 1, pstart: M, length: M }])
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

test('release merges with both neighbours; double use is refused; offsets past 2^32 and 16 TiB work', () => {
  const a = new Allocator()
  a.addDevice(7, M, 20 * T)
  a.reserve([ext(7, M, 16 * T), ext(NO_DEVICE, 0, 5)])
  assert.equal(a.freeBytes(7), 4 * T - M)
  assert.throws(() => a.reserve([ext(7, 5 * T, M)]), /not free/)
  a.release([ext(7, 5 * T, M)])
  a.release([ext(7, 5 * T + 2 * M, M)])
  assert.equal(a.runs(7).length, 3)
  a.release([ext(7, 5 * T + M, M)])
  assert.deepEqual(a.runs(7)[0], { start: 5 * T, end: 5 * T + 3 * M })
  assert.throws(() => a.release([ext(7, 5 * T + M, M)]), /released twice/)
  assert.equal(a.freeBytes(7), 4 * T - M + 3 * M)
})
