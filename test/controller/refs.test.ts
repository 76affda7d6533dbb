// Reference counts against a byte-array model: random sequences of sharing
// (+1) and releasing (-1) give the same counts and the same freed bytes with
// the splice path (few adjustments) and the sweep path (many), and plans
// never touch the live counts until applied.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Refs, type Adjust } from '../../src/controller/refs'
import type { Span } from '../../src/controller/allocator'

const N = 64 // bytes per device in the model

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

/** counts[device][byte]: 0 unmapped, 1 one owner, k shared k times. */
function model(): number[][] {
  return [new Array(N).fill(1), new Array(N).fill(1)]
}

function countsOf(r: Refs, m: number[][]): number[][] {
  return m.map((row, d) => row.map((c, i) => (c === 0 ? 0 : (r.shared(d, i, i + 1)[0]?.count ?? 1))))
}

function freedBytes(spans: Span[]): string[] {
  const out: string[] = []
  for (const s of spans) for (let i = s.pstart; i < s.pstart + s.length; i++) out.push(`${s.device}:${i}`)
  return out.sort()
}

for (const [label, batch] of [
  ['splice', 3],
  ['sweep', 40],
] as const) {
  test(`refs (${label}): counts and freed bytes follow a byte model`, () => {
    const rand = rng(label === 'splice' ? 7 : 11)
    const r = new Refs()
    const m = model()
    for (let round = 0; round < 300; round++) {
      const adjusts: Adjust[] = []
      const want = m.map((row) => [...row])
      const wantFreed: string[] = []
      for (let k = 0; k < batch; k++) {
        const device = rand() < 0.5 ? 0 : 1
        const a = Math.floor(rand() * N)
        const b = Math.min(N, a + 1 + Math.floor(rand() * 8))
        // only share mapped bytes, only release referenced ones (as the controller does)
        const row = want[device]!
        const inc = rand() < 0.5
        let ok = true
        for (let i = a; i < b; i++) if (row[i] === 0) ok = false
        if (!ok) continue
        adjusts.push({ span: { device, pstart: a, length: b - a }, delta: inc ? 1 : -1 })
        for (let i = a; i < b; i++) {
          row[i] = row[i]! + (inc ? 1 : -1)
          if (row[i] === 0) wantFreed.push(`${device}:${i}`)
        }
      }
      const before = countsOf(r, m)
      const plan = r.plan(adjusts)
      assert.deepEqual(countsOf(r, m), before, 'a plan does not change the live counts')
      r.apply(plan)
      for (let d = 0; d < 2; d++) m[d] = want[d]!
      assert.deepEqual(countsOf(r, m), m, `round ${round}`)
      assert.deepEqual(freedBytes(plan.freed), wantFreed.sort(), `freed bytes in round ${round}`)
      // every byte came back: refill what was freed so the model keeps running
      for (const s of plan.freed) for (let i = s.pstart; i < s.pstart + s.length; i++) m[s.device]![i] = 1
    }
  })
}

test('refs: segments stay merged and at least 2; sharing an unmapped byte is a bug', () => {
  const r = new Refs()
  r.apply(r.plan([{ span: { device: 3, pstart: 0, length: 10 }, delta: 1 }]))
  r.apply(r.plan([{ span: { device: 3, pstart: 10, length: 10 }, delta: 1 }]))
  assert.deepEqual(r.shared(3, 0, 100), [{ start: 0, end: 20, count: 2 }])
  const p = r.plan([{ span: { device: 3, pstart: 5, length: 10 }, delta: -1 }])
  assert.deepEqual(p.freed, [])
  r.apply(p)
  assert.deepEqual(r.shared(3, 0, 100), [
    { start: 0, end: 5, count: 2 },
    { start: 15, end: 20, count: 2 },
  ])
  assert.equal(r.sharedBytes({ device: 3, pstart: 0, length: 20 }), 10)
  const q = r.plan([{ span: { device: 3, pstart: 0, length: 20 }, delta: -1 }])
  assert.deepEqual(q.freed, [{ device: 3, pstart: 5, length: 10 }])
})
