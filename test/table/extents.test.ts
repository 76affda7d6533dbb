// onlyWriteProtects: the rule that lets an agent apply a move's fence without waiting for the
// reads in flight (they read what they would read after it).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Flag, NO_DEVICE, onlyWriteProtects, type Extent } from '../../src/table/table'

const e = (vstart: number, length: number, device: number, pstart: number, flags = 0): Extent => ({ vstart, length, device, pstart, flags })

test('no-write over the same places, however the extents are cut, only write-protects', () => {
  const before = [e(0, 10, 1, 100), e(10, 5, NO_DEVICE, 0, Flag.Zero), e(15, 5, 2, 0, Flag.Shared)]
  const after = [
    e(0, 4, 1, 100, Flag.NoWrite),
    e(4, 6, 1, 104, Flag.NoWrite),
    e(10, 5, NO_DEVICE, 0, Flag.Zero | Flag.NoWrite),
    e(15, 5, 2, 0, Flag.Shared | Flag.NoWrite),
  ]
  assert.equal(onlyWriteProtects(before, after), true)
  assert.equal(onlyWriteProtects(after, after), true, 'no change at all')
  assert.equal(
    onlyWriteProtects([e(0, 10, 1, 100)], [e(0, 4, 1, 100, Flag.NoWrite), e(4, 6, 1, 100, Flag.NoWrite)]),
    false,
    'a place moved within the extent',
  )
})

test('a new place, a new device, a lifted no-write or any other flag is not only write-protecting', () => {
  const before = [e(0, 10, 1, 100)]
  assert.equal(onlyWriteProtects(before, [e(0, 10, 1, 200, Flag.NoWrite)]), false, 'moved (a switch)')
  assert.equal(onlyWriteProtects(before, [e(0, 10, 2, 100, Flag.NoWrite)]), false, 'another device')
  assert.equal(onlyWriteProtects([e(0, 10, 1, 100, Flag.NoWrite)], before), false, 'no-write lifted (an undo)')
  assert.equal(onlyWriteProtects(before, [e(0, 10, 1, 100, Flag.Invalid)]), false)
  assert.equal(onlyWriteProtects(before, [e(0, 10, 1, 100, Flag.Error | Flag.NoWrite)]), false)
  assert.equal(onlyWriteProtects(before, [e(0, 10, NO_DEVICE, 0, Flag.Zero)]), false, 'discarded')
  assert.equal(onlyWriteProtects(before, [e(0, 5, 1, 100, Flag.NoWrite)]), false, 'does not tile the same range')
})
