// Wire framing: u32 BE bodyLength | u32 BE headerLength | header (UTF-8 JSON) | payload.
// bodyLength counts header + payload (not the 8-byte prefix); headerLength <= bodyLength.
//
// Invariants:
//   * the decoder never buffers more than one frame's worth past a checked prefix: the
//     length prefix is checked against maxFrame before any body byte is kept;
//   * bytes of one frame are joined once, when the frame is complete (chunks are only
//     collected meanwhile), so decoding is linear in the input even for 25 MB tables;
//   * after the decoder throws it stays failed: the stream has no resync point.

import { VstorError } from '../errors'
import { MAX_FRAME } from '../config'

export const PREFIX = 8

/** A decoded header: a JSON object with a string `t` (kind-specific checks live in connection.ts). */
export interface Header {
  t: string
  [key: string]: unknown
}
export interface Frame {
  header: Header
  payload?: Buffer
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Prefix + header bytes for one frame; the payload (if any) follows as its own buffer. */
export function encodeHead(header: object, payloadLength = 0, maxFrame = MAX_FRAME): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const body = json.length + payloadLength
  if (body > maxFrame) {
    throw new VstorError('FRAME_TOO_LARGE', `a message of ${body} bytes is over the ${maxFrame}-byte frame limit`)
  }
  const head = Buffer.allocUnsafe(PREFIX + json.length)
  head.writeUInt32BE(body, 0)
  head.writeUInt32BE(json.length, 4)
  json.copy(head, PREFIX)
  return head
}

/** One buffer holding a whole frame (tests and small messages; Connection writes head and payload corked). */
export function encodeFrame(header: object, payload?: Buffer, maxFrame = MAX_FRAME): Buffer {
  const head = encodeHead(header, payload?.length ?? 0, maxFrame)
  return payload && payload.length > 0 ? Buffer.concat([head, payload]) : head
}

/** Parse one frame body (header + payload). Throws BAD_FRAME. */
export function decodeBody(body: Buffer, headerLength: number): Frame {
  let header: unknown
  try {
    header = JSON.parse(utf8.decode(body.subarray(0, headerLength)))
  } catch {
    throw new VstorError('BAD_FRAME', 'a frame header is not valid UTF-8 JSON')
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new VstorError('BAD_FRAME', 'a frame header is not a JSON object')
  }
  if (typeof (header as { t?: unknown }).t !== 'string') {
    throw new VstorError('BAD_FRAME', "a frame header has no string field 't'")
  }
  const frame: Frame = { header: header as Header }
  if (body.length > headerLength) frame.payload = body.subarray(headerLength)
  return frame
}

export class FrameDecoder {
  private chunks: Buffer[] = []
  private buffered = 0
  /** Body length and header length of the frame being collected, once its prefix is read. */
  private body = -1
  private headerLength = -1
  private failed: VstorError | null = null

  constructor(private readonly maxFrame = MAX_FRAME) {}

  /** Feed bytes; returns every frame completed by them. Throws FRAME_TOO_LARGE / BAD_FRAME. */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw this.failed
    if (chunk.length > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.length
    }
    const frames: Frame[] = []
    try {
      while (true) {
        if (this.body < 0) {
          if (this.buffered < PREFIX) break
          const prefix = this.take(PREFIX)
          const body = prefix.readUInt32BE(0)
          const headerLength = prefix.readUInt32BE(4)
          if (body > this.maxFrame) {
            throw new VstorError('FRAME_TOO_LARGE', `the peer sent a frame of ${body} bytes, over the ${this.maxFrame}-byte limit`)
          }
          if (headerLength > body) {
            throw new VstorError('BAD_FRAME', `a frame's header length ${headerLength} exceeds its body length ${body}`)
          }
          this.body = body
          this.headerLength = headerLength
        }
        if (this.buffered < this.body) break
        const body = this.take(this.body)
        const headerLength = this.headerLength
        this.body = -1
        this.headerLength = -1
        frames.push(decodeBody(body, headerLength))
      }
    } catch (e) {
      this.failed = e instanceof VstorError ? e : new VstorError('BAD_FRAME', String(e))
      this.chunks = []
      this.buffered = 0
      throw this.failed
    }
    return frames
  }

  /** Bytes received but not yet part of a returned frame. */
  get pending(): number {
    return this.buffered + (this.body >= 0 ? PREFIX : 0)
  }

  /** Remove exactly n buffered bytes (n <= buffered), copying only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0]
    if (n === 0) return Buffer.alloc(0)
    this.buffered -= n
    if (first && first.length >= n) {
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = Buffer.allocUnsafe(n)
    let off = 0
    let i = 0
    while (off < n) {
      const c = this.chunks[i] as Buffer
      const k = Math.min(c.length, n - off)
      c.copy(out, off, 0, k)
      off += k
      if (k === c.length) i++
      else this.chunks[i] = c.subarray(k)
    }
    this.chunks.splice(0, i)
    return out
  }
}
