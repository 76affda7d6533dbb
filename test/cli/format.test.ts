// Human output: aligned columns, sizes as words or exact bytes, states as words.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { disksTable, mapTable, stateWords, table } from '../../src/cli/format'
import type { DiskMap, MapExtent } from '../../src/protocol/messages'

const ext = (o: Partial<MapExtent>): MapExtent => ({
  offset: 0,
  length: 2 ** 20,
  device: 'pool0',
  deviceOffset: 2 ** 20,
  invalid: false,
  noWrite: false,
  zero: false,
  error: false,
  shared: false,
  ...o,
})

test('table aligns columns, numbers to the right', () => {
  const out = table(
    [
      { a: 'x', n: 5 },
      { a: 'longer', n: 12345 },
    ],
    [
      { header: 'NAME', get: (r) => r.a },
      { header: 'N', get: (r) => String(r.n), align: 'right' },
    ],
  )
  assert.equal(out, ['NAME        N', 'x           5', 'longer  12345'].join('\n'))
})

test('states print as words', () => {
  assert.equal(stateWords(ext({})), 'mapped')
  assert.equal(stateWords(ext({ device: null, deviceOffset: null, zero: true })), 'zero')
  assert.equal(stateWords(ext({ noWrite: true, error: true })), 'no-write,error')
  assert.equal(stateWords(ext({ device: null, deviceOffset: null, invalid: true })), 'invalid')
})

test('sizes are human-readable unless --bytes; 16 TiB offsets stay exact', () => {
  const big = 16 * 2 ** 40
  const map: DiskMap = {
    name: 'd',
    size: big + 2 ** 20,
    generation: 7,
    extents: [ext({ offset: 0, length: big }), ext({ offset: big, deviceOffset: big + 2 ** 20 })],
  }
  const human = mapTable(map, false)
  assert.match(human, /^disk d: size 16T, generation 7, 2 extents$/m)
  assert.match(human, /\s16T\s+pool0\s+1M\s+mapped/)
  const bytes = mapTable(map, true)
  assert.ok(bytes.includes(String(big)), 'exact byte offset')
  assert.ok(bytes.includes(String(big + 2 ** 20)))
  const only = mapTable(map, true, { start: big, end: big + 2 ** 20 })
  assert.equal(only.split('\n').length, 3, 'header, column titles, one extent in range')
  const disks = disksTable(
    [
      {
        name: 'vm1',
        size: 20 * 2 ** 30,
        allocated: 0,
        thin: true,
        generation: 3,
        extents: 1,
        openBy: [],
        origin: null,
        readonly: false,
        exclusive: 0,
        shared: 0,
      },
    ],
    false,
  )
  assert.match(disks, /vm1\s+20G\s+0\s+0\s+0\s+thin\s+-/)
})
