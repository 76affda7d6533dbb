// Binary form of an extent list (a whole table or one Change) for the wire.
//
// Layout, little-endian, 16 + 21 * count bytes:
//   u32 magic 'VTB1' (the bytes 56 54 42 31)
//   u32 count
//   f64 vstart[count + 1]   the last entry is the end of the last extent,
//                           so length[i] = vstart[i+1] - vstart[i] is derived
//   f64 pstart[count]
//   i32 device[count]
//   u8  flags[count]
// Every array starts 4- or 8-byte aligned relative to the frame start, and
// decoding copies them with one memcpy each (no per-extent objects), so a
// table of 1M extents decodes in milliseconds.
//
// Invariants enforced on decode (else VstorError BAD_FRAME): exact length,
// vstart strictly rising safe integers >= 0, pstart safe integers >= 0,
// device >= -1, flags within ALL_FLAGS.

import os from 'node:os'
import { VstorError } from '../errors'
import type { Extent } from './table'

export const MAGIC = 0x31425456 // 'VTB1' read as a little-endian u32
const HEADER = 8
import { ALL_FLAGS as FLAG_MASK } from './flags'
const BIG_ENDIAN = os.endianness() === 'BE'

/** The struct-of-arrays form shared by Table and the codec. */
export interface ExtentArrays {
  count: number
  vstart: Float64Array // count + 1 entries (sentinel end)
  pstart: Float64Array
  device: Int32Array
  flags: Uint8Array
}

export function encodedSize(count: number): number {
  return HEADER + 8 * (count + 1) + 13 * count
}

/** Encode the first `count` entries of the arrays (vstart must hold count + 1 entries). */
export function encodeArrays(a: ExtentArrays): Buffer {
  const n = a.count
  const buf = Buffer.allocUnsafe(encodedSize(n))
  buf.writeUInt32LE(MAGIC, 0)
  buf.writeUInt32LE(n, 4)
  let off = HEADER
  off = put(buf, off, new Uint8Array(a.vstart.buffer, a.vstart.byteOffset, 8 * (n + 1)), 8)
  off = put(buf, off, new Uint8Array(a.pstart.buffer, a.pstart.byteOffset, 8 * n), 8)
  off = put(buf, off, new Uint8Array(a.device.buffer, a.device.byteOffset, 4 * n), 4)
  put(buf, off, new Uint8Array(a.flags.buffer, a.flags.byteOffset, n), 1)
  return buf
}

function put(buf: Buffer, off: number, bytes: Uint8Array, width: number): number {
  buf.set(bytes, off)
  if (BIG_ENDIAN && width > 1) {
    const part = buf.subarray(off, off + bytes.length)
    if (width === 8) part.swap64()
    else part.swap32()
  }
  return off + bytes.length
}

/** Fresh typed arrays for n extents (vstart has the end sentinel). */
function allocArrays(n: number): ExtentArrays {
  return { count: n, vstart: new Float64Array(n + 1), pstart: new Float64Array(n), device: new Int32Array(n), flags: new Uint8Array(n) }
}

/** Encode a contiguous extent list (each extent starts where the previous ends). */
export function encodeExtents(extents: readonly Extent[]): Buffer {
  const n = extents.length
  const a = allocArrays(n)
  for (let i = 0; i < n; i++) {
    const e = extents[i]!
    if (i > 0 && a.vstart[i] !== e.vstart) {
      throw new VstorError('BAD_ARGUMENT', `cannot encode extents: extent ${i} starts at ${e.vstart}, not where extent ${i - 1} ends`)
    }
    a.vstart[i] = e.vstart
    a.vstart[i + 1] = e.vstart + e.length
    a.pstart[i] = e.pstart
    a.device[i] = e.device
    a.flags[i] = e.flags
  }
  return encodeArrays(a)
}

/** Decode and validate into fresh typed arrays (exact capacity). */
export function decodeArrays(buf: Buffer): ExtentArrays {
  if (!Buffer.isBuffer(buf) || buf.length < HEADER + 8) {
    throw new VstorError('BAD_FRAME', `extent table payload too short (${buf?.length ?? 0} bytes); the peer sent a truncated table`)
  }
  if (buf.readUInt32LE(0) !== MAGIC) throw new VstorError('BAD_FRAME', 'extent table payload has a wrong magic (expected VTB1)')
  const n = buf.readUInt32LE(4)
  const want = encodedSize(n)
  if (want !== buf.length) {
    throw new VstorError('BAD_FRAME', `extent table payload of ${buf.length} bytes does not match its count ${n} (needs ${want} bytes)`)
  }
  const a = allocArrays(n)
  let off = HEADER
  off = take(buf, off, a.vstart)
  off = take(buf, off, a.pstart)
  off = take(buf, off, a.device)
  take(buf, off, a.flags)
  validate(a)
  return a
}

function take(buf: Buffer, off: number, arr: Float64Array | Int32Array | Uint8Array): number {
  const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength)
  bytes.set(buf.subarray(off, off + arr.byteLength))
  if (BIG_ENDIAN && arr.BYTES_PER_ELEMENT > 1) {
    const b = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength)
    if (arr.BYTES_PER_ELEMENT === 8) b.swap64()
    else b.swap32()
  }
  return off + arr.byteLength
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER

function validate(a: ExtentArrays): void {
  const { count: n, vstart: vs, pstart: ps, device: dev, flags: fl } = a
  let prev = vs[0]!
  if (!(prev >= 0 && prev <= MAX_SAFE && Math.floor(prev) === prev)) throw bad(`extent 0 starts at ${prev}`)
  // One tight pass, no calls: NaN fails every comparison, so it is caught too.
  for (let i = 0; i < n; i++) {
    const next = vs[i + 1]!
    if (!(next > prev && next <= MAX_SAFE && Math.floor(next) === next)) throw bad(`extent ${i} has a bad end ${next} (start ${prev})`)
    prev = next
    const p = ps[i]!
    if (!(p >= 0 && p <= MAX_SAFE && Math.floor(p) === p)) throw bad(`extent ${i} has a bad pstart ${p}`)
    if (dev[i]! < -1) throw bad(`extent ${i} has a bad device ${dev[i]}`)
    if (fl[i]! > FLAG_MASK) throw bad(`extent ${i} has unknown flags ${fl[i]}`)
  }
}

function bad(what: string): VstorError {
  return new VstorError('BAD_FRAME', `extent table payload is corrupt: ${what}`)
}

/** Decode to Extent objects (for changes; tables use Table.fromBuffer). */
export function decodeExtents(buf: Buffer): Extent[] {
  const a = decodeArrays(buf)
  const out: Extent[] = new Array(a.count)
  for (let i = 0; i < a.count; i++) {
    out[i] = {
      vstart: a.vstart[i]!,
      length: a.vstart[i + 1]! - a.vstart[i]!,
      device: a.device[i]!,
      pstart: a.pstart[i]!,
      flags: a.flags[i]!,
    }
  }
  return out
}
