// Peers that send garbage: the server answers what it can address, closes what it
// cannot, never throws, and keeps serving well-behaved clients.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { PROTOCOL_VERSION } from '../../src/config'
import { frame, hello, RawClient, startServer, stillServes, type Fixture } from './fixture'

let fx: Fixture
before(async () => {
  fx = await startServer()
})
after(async () => {
  await fx.close()
})

/** Deterministic pseudo-random bytes (xorshift), so a failure can be replayed. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

/** Send bytes; resolve with what came back once the server closed on us. */
async function sendUntilClosed(...chunks: Buffer[]): Promise<RawClient> {
  const raw = await RawClient.open(fx.socket)
  for (const c of chunks) await raw.write(c).catch(() => undefined)
  await raw.closed
  return raw
}

test('random bytes: the connection ends, the server keeps serving', async () => {
  for (const seed of [1, 7, 42, 1234]) {
    const raw = await RawClient.open(fx.socket)
    await raw.write(noise(4096, seed)).catch(() => undefined)
    raw.socket.end()
    await raw.closed
    assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
  }
  // random bytes after a proper hello
  const raw = await RawClient.open(fx.socket)
  await raw.write(hello(1))
  await raw.waitFrames(1)
  await raw.write(Buffer.concat([Buffer.from([0x7f, 0, 0, 0]), noise(2048, 99)]))
  await raw.closed
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('a huge length prefix: the server closes without waiting for the body', async () => {
  const prefix = Buffer.alloc(8)
  prefix.writeUInt32BE(0xffffffff, 0)
  prefix.writeUInt32BE(10, 4)
  const raw = await sendUntilClosed(prefix)
  assert.equal(raw.frames.length, 0)
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('bad JSON, a non-object header, a header without t: closed', async () => {
  for (const bad of [frame('{nope'), frame('[1,2,3]'), frame('"hello"'), frame({ id: 1, method: 'status' })]) {
    const raw = await RawClient.open(fx.socket)
    await raw.write(hello(1))
    await raw.waitFrames(1)
    await raw.write(bad)
    await raw.closed
    assert.equal(raw.frames.length, 1)
    assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
  }
})

test('a request before hello gets an error with its id, then the connection closes', async () => {
  const before = fx.seen.length
  const raw = await sendUntilClosed(frame({ t: 'req', id: 5, method: 'status', params: {} }))
  assert.equal(raw.frames.length, 1)
  assert.equal(raw.frames[0]?.header.id, 5)
  assert.equal((raw.frames[0]?.header.error as { code: string }).code, 'BAD_REQUEST')
  assert.equal(fx.seen.length, before)
  // a note or a stray response first: closed, nothing to answer
  for (const first of [frame({ t: 'note', method: 'agent.open', params: { disks: [] } }), frame({ t: 'res', id: 1, result: {} })]) {
    const r = await sendUntilClosed(first)
    assert.equal(r.frames.length, 0)
  }
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('a hello with the wrong protocol gets PROTOCOL_VERSION, then the connection closes', async () => {
  const raw = await sendUntilClosed(frame({ t: 'hello', id: 1, protocol: PROTOCOL_VERSION + 1, role: 'cli' }))
  assert.equal(raw.frames.length, 1)
  assert.equal((raw.frames[0]?.header.error as { code: string }).code, 'PROTOCOL_VERSION')
  const bad = await sendUntilClosed(frame({ t: 'hello', id: 1, protocol: PROTOCOL_VERSION, role: 'root' }))
  assert.equal((bad.frames[0]?.header.error as { code: string }).code, 'BAD_REQUEST')
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('after hello: malformed requests with an id are answered and the connection stays', async () => {
  const raw = await RawClient.open(fx.socket)
  try {
    await raw.write(hello(1))
    await raw.waitFrames(1)
    await raw.write(frame({ t: 'req', id: 2, params: {} }))
    await raw.write(frame({ t: 'req', id: 3, method: 'disk.map', params: { name: '' } }))
    await raw.write(frame({ t: 'req', id: 4, method: 'nope', params: {} }))
    await raw.write(frame({ t: 'hello', id: 5, protocol: PROTOCOL_VERSION, role: 'cli' }))
    await raw.write(frame({ t: 'res', id: 999, result: {} }))
    await raw.write(frame({ t: 'req', id: 6, method: 'status' }))
    const f = await raw.waitFrames(6)
    const codes = f.slice(1).map((x) => [x.header.id, (x.header.error as { code?: string } | undefined)?.code ?? x.header.result])
    assert.deepEqual(codes, [
      [2, 'BAD_REQUEST'],
      [3, 'BAD_REQUEST'],
      [4, 'UNKNOWN_METHOD'],
      [5, 'BAD_REQUEST'],
      [6, { ok: true, method: 'status' }],
    ])
    // a request without a usable id cannot be answered: closed
    await raw.write(frame({ t: 'req', id: 'x', method: 'status' }))
    await raw.closed
  } finally {
    raw.destroy()
  }
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('hello and many requests fed one byte at a time are all answered', async () => {
  const n = 20
  const requests = Buffer.concat(
    Array.from({ length: n }, (_, i) => frame({ t: 'req', id: 10 + i, method: 'agent.sync', params: { generation: i } })),
  )
  const raw = await RawClient.open(fx.socket)
  const byteByByte = async (b: Buffer) => {
    for (let i = 0; i < b.length; i++) await raw.write(b.subarray(i, i + 1))
  }
  try {
    await byteByByte(hello(1))
    assert.equal((await raw.waitFrames(1))[0]?.header.id, 1)
    await byteByByte(requests)
    const f = await raw.waitFrames(n + 1)
    assert.deepEqual(
      f.slice(1).map((x) => [x.header.id, x.header.result]),
      Array.from({ length: n }, (_, i) => [10 + i, { generation: i }]),
    )
  } finally {
    raw.destroy()
  }
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})

test('requests sent before the hello reply are refused, not handled', async () => {
  const before = fx.seen.length
  const raw = await RawClient.open(fx.socket)
  try {
    await raw.write(hello(1, { role: 'agent', agentId: 'slow' }))
    await raw.write(frame({ t: 'req', id: 2, method: 'status', params: {} }))
    const f = await raw.waitFrames(2)
    const byId = new Map(f.map((x) => [x.header.id, x.header]))
    assert.equal((byId.get(2)?.error as { code: string }).code, 'BAD_REQUEST')
    assert.equal((byId.get(1)?.result as { controllerId: string }).controllerId, 'ctl-1')
    assert.equal(fx.seen.length, before)
    // and once hello is done the same connection is served
    await raw.write(frame({ t: 'req', id: 3, method: 'status', params: {} }))
    assert.deepEqual((await raw.waitFrames(3))[2]?.header.result, { ok: true, method: 'status' })
  } finally {
    raw.destroy()
  }
})

test('a client that vanishes mid-frame and mid-request leaves the server fine', async () => {
  const raw = await RawClient.open(fx.socket)
  await raw.write(hello(1))
  await raw.waitFrames(1)
  await raw.write(frame({ t: 'req', id: 2, method: 'disk.map', params: { name: 'hang' } }))
  await raw.write(frame({ t: 'req', id: 3, method: 'status', params: {} }).subarray(0, 11))
  raw.destroy()
  await raw.closed
  assert.deepEqual(await stillServes(fx.socket), { ok: true, method: 'status' })
})
