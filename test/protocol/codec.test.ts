import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeFrame, encodeHead, FrameDecoder } from '../../src/protocol/codec'
import { VstorError } from '../../src/errors'
import { frame } from './fixture'

const code = (c: string) => (e: unknown) => e instanceof VstorError && e.code === c

test('a frame round-trips header and payload, in the documented layout', () => {
  const payload = Buffer.from([1, 2, 3, 4, 5])
  const buf = encodeFrame({ t: 'req', id: 3, method: 'status', params: {} }, payload)
  const json = JSON.stringify({ t: 'req', id: 3, method: 'status', params: {} })
  assert.equal(buf.readUInt32BE(0), json.length + 5)
  assert.equal(buf.readUInt32BE(4), json.length)
  assert.equal(buf.subarray(8, 8 + json.length).toString(), json)
  const frames = new FrameDecoder().push(buf)
  assert.equal(frames.length, 1)
  assert.deepEqual(frames[0]?.header, { t: 'req', id: 3, method: 'status', params: {} })
  assert.deepEqual(frames[0]?.payload, payload)
})

test('a frame without payload decodes with payload undefined', () => {
  const [f] = new FrameDecoder().push(encodeFrame({ t: 'note', method: 'agent.open', params: { disks: [] } }))
  assert.equal(f?.payload, undefined)
})

test('many frames fed one byte at a time come out whole and in order', () => {
  const bufs = Array.from({ length: 30 }, (_, i) =>
    encodeFrame({ t: 'res', id: i, result: { i, s: 'ü€' } }, i % 3 ? Buffer.alloc(i, i) : undefined),
  )
  const all = Buffer.concat(bufs)
  const d = new FrameDecoder()
  const out = []
  for (let i = 0; i < all.length; i++) out.push(...d.push(all.subarray(i, i + 1)))
  assert.equal(out.length, 30)
  out.forEach((f, i) => {
    assert.deepEqual(f.header, { t: 'res', id: i, result: { i, s: 'ü€' } })
    assert.deepEqual(f.payload, i % 3 ? Buffer.alloc(i, i) : undefined)
  })
  assert.equal(d.pending, 0)
})

test('several frames in one chunk, and a split at every boundary, decode the same', () => {
  const all = Buffer.concat([encodeFrame({ t: 'note', method: 'a' }), encodeFrame({ t: 'note', method: 'b' }, Buffer.from('xyz'))])
  for (let cut = 0; cut <= all.length; cut++) {
    const d = new FrameDecoder()
    const out = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))]
    assert.deepEqual(
      out.map((f) => f.header.method),
      ['a', 'b'],
      `cut at ${cut}`,
    )
    assert.equal(out[1]?.payload?.toString(), 'xyz')
  }
})

test('a 25 MB payload in 64 KiB chunks decodes intact', () => {
  const payload = Buffer.alloc(25 * 2 ** 20)
  for (let i = 0; i < payload.length; i += 4096) payload.writeUInt32BE(i, i)
  const buf = encodeFrame({ t: 'req', id: 1, method: 'table.load', params: {} }, payload)
  const d = new FrameDecoder()
  const out = []
  for (let i = 0; i < buf.length; i += 65536) out.push(...d.push(buf.subarray(i, i + 65536)))
  assert.equal(out.length, 1)
  assert.ok(out[0]?.payload?.equals(payload))
})

test('a length over the limit is FRAME_TOO_LARGE before the body arrives', () => {
  const prefix = Buffer.alloc(8)
  prefix.writeUInt32BE(0xffffffff, 0)
  assert.throws(() => new FrameDecoder().push(prefix), code('FRAME_TOO_LARGE'))
  const small = new FrameDecoder(100)
  assert.throws(() => small.push(frame({ t: 'note', pad: 'x'.repeat(100) })), code('FRAME_TOO_LARGE'))
  assert.throws(() => encodeHead({ t: 'note' }, 200, 100), code('FRAME_TOO_LARGE'))
})

test('malformed frames are BAD_FRAME and the decoder stays failed', () => {
  const bad: [string, Buffer][] = [
    ['header length > body', Buffer.from([0, 0, 0, 2, 0, 0, 0, 9, 0x7b, 0x7d])],
    ['bad JSON', frame('{nope')],
    ['array header', frame('[1,2]')],
    ['null header', frame('null')],
    ['no t', frame({ id: 1 })],
    ['numeric t', frame({ t: 5 })],
    ['empty header', frame('')],
  ]
  // {"t":"\xff"}: only a strict UTF-8 decoder refuses it
  const raw = Buffer.concat([Buffer.from('{"t":"'), Buffer.from([0xff]), Buffer.from('"}')])
  const p = Buffer.alloc(8)
  p.writeUInt32BE(raw.length, 0)
  p.writeUInt32BE(raw.length, 4)
  bad.push(['invalid UTF-8 bytes', Buffer.concat([p, raw])])
  for (const [what, buf] of bad) {
    const d = new FrameDecoder()
    assert.throws(() => d.push(buf), code('BAD_FRAME'), what)
    assert.throws(() => d.push(encodeFrame({ t: 'note' })), code('BAD_FRAME'), `${what}: stays failed`)
  }
})
