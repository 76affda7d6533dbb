// Extent-table micro-benchmark (not a test): `node dist/bench/table.js`.
// Tables are fragmented on purpose: n extents of 1 MiB that cannot merge
// (each skips a unit on its device), built straight from typed arrays.
// Times are process CPU time (user + system), best of a few runs, so a
// busy shared machine skews them less than wall time would.

import { UNIT } from '../src/config'
import { encodeArrays } from '../src/table/codec'
import { Flag, Table } from '../src/table/table'

export interface TableBench {
  lookups: { extents: number; nsPerLookup: number; lookupsPerSec: number }[]
  bytesPerExtent: { computed: number; measured: number }
  encodeMs: number // Table.encode of 1M extents
  decodeMs: number // Table.fromBuffer of 1M extents
  encodedBytes: number
  applyMs: number // one plan + apply (grows the arrays: fromBuffer sizes them exactly) splitting an extent in the middle of 1M extents
}

/** The binary form of a table of n unmergeable 1 MiB extents. */
function fragmentedBuffer(n: number): Buffer {
  const vstart = new Float64Array(n + 1)
  const pstart = new Float64Array(n)
  const device = new Int32Array(n)
  const flags = new Uint8Array(n)
  for (let i = 0; i <= n; i++) vstart[i] = i * UNIT
  for (let i = 0; i < n; i++) {
    pstart[i] = UNIT + 2 * i * UNIT
    device[i] = 1 + (i % 4)
    flags[i] = i % 7 === 0 ? Flag.NoWrite : 0
  }
  return encodeArrays({ count: n, vstart, pstart, device, flags })
}

function cpuNs(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1000
}

function lookupNs(t: Table): number {
  const probes = new Float64Array(1 << 16)
  for (let i = 0; i < probes.length; i++) probes[i] = Math.floor(Math.random() * t.size)
  let sink = 0
  for (let i = 0; i < probes.length; i++) sink += t.find(probes[i]!) // warm up
  let best = Infinity
  for (let k = 0; k < 3; k++) {
    const rounds = 20
    const t0 = cpuNs()
    for (let r = 0; r < rounds; r++) for (let i = 0; i < probes.length; i++) sink += t.find(probes[i]!)
    best = Math.min(best, (cpuNs() - t0) / (rounds * probes.length))
  }
  if (sink < 0) console.log(sink) // keep the loop alive
  return best
}

function ms(fn: () => void, runs = 3): number {
  let best = Infinity
  for (let k = 0; k < runs; k++) {
    const t0 = cpuNs()
    fn()
    best = Math.min(best, (cpuNs() - t0) / 1e6)
  }
  return best
}

export async function runTableBench(): Promise<TableBench> {
  const lookups: TableBench['lookups'] = []
  for (const n of [1_000, 100_000, 1_000_000]) {
    const t = Table.fromBuffer(n * UNIT, fragmentedBuffer(n), 1)
    const ns = lookupNs(t)
    lookups.push({ extents: n, nsPerLookup: round(ns, 1), lookupsPerSec: Math.round(1e9 / ns) })
  }

  const n = 1_000_000
  const buf = fragmentedBuffer(n)
  const before = process.memoryUsage().arrayBuffers
  let table!: Table
  table = Table.fromBuffer(n * UNIT, buf, 1)
  const measured = (process.memoryUsage().arrayBuffers - before) / n
  const decodeMs = ms(() => (table = Table.fromBuffer(n * UNIT, buf, 1)))
  const raw = table as unknown as { vs: Float64Array; ps: Float64Array; dev: Int32Array; fl: Uint8Array }
  const computed = (raw.vs.byteLength + raw.ps.byteLength + raw.dev.byteLength + raw.fl.byteLength) / n
  let encoded!: Buffer
  const encodeMs = ms(() => (encoded = Table.encode(table)))
  const mid = (n / 2) * UNIT
  const applyMs = ms(
    () =>
      table.apply(
        table.plan(mid + UNIT / 2, mid + UNIT, [{ vstart: mid + UNIT / 2, length: UNIT / 2, device: 9, pstart: UNIT, flags: 0 }]),
      ),
    1,
  )
  table.assertInvariant()

  return {
    lookups,
    bytesPerExtent: { computed: round(computed, 2), measured: round(measured, 2) },
    encodeMs: round(encodeMs, 1),
    decodeMs: round(decodeMs, 1),
    encodedBytes: encoded.length,
    applyMs: round(applyMs, 2),
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

function print(r: TableBench): void {
  console.log('extents     ns/lookup   lookups/s   (CPU time)')
  for (const l of r.lookups) console.log(`${String(l.extents).padEnd(11)} ${String(l.nsPerLookup).padStart(9)}   ${l.lookupsPerSec}`)
  console.log(`bytes/extent: ${r.bytesPerExtent.computed} computed, ${r.bytesPerExtent.measured} measured (arrayBuffers delta)`)
  console.log(`1M extents: encode ${r.encodeMs} ms, fromBuffer ${r.decodeMs} ms, ${r.encodedBytes} bytes; plan+apply ${r.applyMs} ms`)
}

if (require.main === module) {
  runTableBench().then(print, (e) => {
    console.error(e)
    process.exit(1)
  })
}
