import { test } from 'node:test'
import assert from 'node:assert/strict'
import { VstorError } from '../../src/errors'
import { PROTOCOL_VERSION } from '../../src/config'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { connect, Connection, Reply } from '../../src/protocol/connection'
import { startServer, tempDir, type Fixture } from './fixture'

const fails =
  (c: string, text = '') =>
  (e: unknown) =>
    e instanceof VstorError && e.code === c && e.message.includes(text)

async function withClient(fn: (fx: Fixture, client: Connection, server: Connection) => Promise<void>): Promise<void> {
  const fx = await startServer()
  const { conn } = await connect(fx.socket, { role: 'agent', agentId: 'a1', mountpoint: '/mnt/x', pid: 1, generation: 0 })
  try {
    const server = [...fx.server.connections()][0]
    assert.ok(server)
    await fn(fx, conn, server)
  } finally {
    conn.close()
    await fx.close()
  }
}

test('connect says hello; the server sees it and answers with the hello reply', async () => {
  const fx = await startServer()
  try {
    const { conn, reply } = await connect(fx.socket, { role: 'agent', agentId: 'a1', mountpoint: '/mnt/x', pid: 12, generation: 3 })
    assert.deepEqual(reply, { protocol: PROTOCOL_VERSION, controllerId: 'ctl-1', generation: 7 })
    assert.deepEqual(fx.hellos, [
      { protocol: PROTOCOL_VERSION, role: 'agent', agentId: 'a1', mountpoint: '/mnt/x', pid: 12, generation: 3 },
    ])
    assert.deepEqual([...fx.server.connections()][0]?.hello, fx.hellos[0])
    conn.close()
  } finally {
    await fx.close()
  }
})

test('client -> server requests get results with increasing ids', async () => {
  await withClient(async (fx, client) => {
    assert.deepEqual(await client.call('status', {}), { ok: true, method: 'status' })
    assert.deepEqual(await client.call('agent.sync', { generation: 41 }), { generation: 41 })
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call('agent.sync', { generation: i })))
    assert.deepEqual(
      many.map((r) => r.generation),
      Array.from({ length: 50 }, (_, i) => i),
    )
    assert.equal(fx.seen.length, 52)
  })
})

test('server -> client requests and a 30 MB payload both ways', async () => {
  await withClient(async (_fx, client, server) => {
    client.onRequest(async (method, params, payload) => {
      assert.equal(method, 'table.load')
      return new Reply({ generation: (params as { generation: number }).generation }, Buffer.from(payload ?? []).reverse())
    })
    const payload = Buffer.alloc(30 * 2 ** 20)
    for (let i = 0; i < payload.length; i += 1000) payload[i] = i % 251
    const params = {
      generation: 5,
      durable: 5,
      devices: [{ id: 1, name: 'd', uuid: 'u-1', hint: '/x' }],
      disks: [{ name: 'v', uid: 'uid-v', size: 1, generation: 5, bytes: payload.length }],
    }
    const r = await server.request('table.load', params, { payload })
    assert.deepEqual(r.result, { generation: 5 })
    assert.ok(r.payload?.equals(Buffer.from(payload).reverse()))
    // and the other way: the fixture server reverses the client's payload too
    const back = await client.request('table.load', params, { payload })
    assert.ok(back.payload?.equals(Buffer.from(payload).reverse()))
  })
})

test('errors cross as {code, message}; a non-VstorError becomes INTERNAL', async () => {
  await withClient(async (_fx, client) => {
    await assert.rejects(client.call('disk.map', { name: 'missing' }), fails('NOT_FOUND', 'no disk missing'))
    await assert.rejects(client.call('disk.map', { name: 'boom' }), fails('INTERNAL', 'handler bug'))
    // the connection still works afterwards
    assert.deepEqual(await client.call('status', {}), { ok: true, method: 'status' })
  })
})

test('bad params are refused with BAD_REQUEST before the handler runs', async () => {
  await withClient(async (fx, client) => {
    // cast: a buggy or hostile peer, not the typed API
    await assert.rejects(client.call('disk.map', { name: 7 } as never), fails('BAD_REQUEST', 'params.name'))
    await assert.rejects(client.call('disk.explode' as never, {} as never), fails('UNKNOWN_METHOD', 'disk.explode'))
    assert.deepEqual(fx.seen, [])
  })
})

test('a request to a side without a handler gets UNKNOWN_METHOD', async () => {
  await withClient(async (_fx, _client, server) => {
    await assert.rejects(server.call('disk.remove', { generation: 1, disk: 'v', uid: 'uid-v' }), fails('UNKNOWN_METHOD', 'disk.remove'))
  })
})

test('a request without an answer times out with TIMEOUT; a late answer is ignored', async () => {
  await withClient(async (_fx, client) => {
    await assert.rejects(client.call('disk.map', { name: 'hang' }, { timeoutMs: 50 }), fails('TIMEOUT', 'disk.map'))
    assert.deepEqual(await client.call('status', {}), { ok: true, method: 'status' })
  })
})

test('closing rejects every pending request with CLOSED, both sides', async () => {
  await withClient(async (_fx, client, server) => {
    let closes = 0
    client.on('close', () => closes++)
    const pending = [client.call('disk.map', { name: 'hang' }), client.call('disk.map', { name: 'hang' })]
    client.onRequest(() => new Promise(() => undefined))
    const serverPending = server.call('disk.remove', { generation: 1, disk: 'v', uid: 'uid-v' })
    // let the requests reach the peers
    await new Promise((r) => setTimeout(r, 20))
    client.close()
    client.close()
    for (const p of pending) await assert.rejects(p, fails('CLOSED', 'disk.map'))
    await assert.rejects(serverPending, fails('CLOSED', 'disk.remove'))
    assert.equal(closes, 1)
    assert.equal(client.closed, true)
    await assert.rejects(client.call('status', {}), fails('CLOSED'))
  })
})

test('notes reach the peer handler with checked params; bad notes close the connection', async () => {
  await withClient(async (fx, client, server) => {
    client.notify('agent.open', { disks: ['vm1', 'vm2'] })
    assert.deepEqual(await client.call('status', {}), { ok: true, method: 'status' })
    assert.deepEqual(fx.notes, [['agent.open', { disks: ['vm1', 'vm2'] }]])
    const gone = new Promise((r) => server.once('close', r))
    client.notify('agent.open', { disks: 'vm1' } as never)
    await gone
    assert.equal(fx.notes.length, 1)
  })
})

test('a result that cannot be sent becomes an error reply, not a dead connection', async () => {
  await withClient(async (_fx, client, server) => {
    client.onRequest(async () => ({ generation: BigInt(1) }))
    await assert.rejects(server.call('disk.remove', { generation: 1, disk: 'v', uid: 'uid-v' }), fails('INTERNAL', 'BigInt'))
    assert.deepEqual(await client.call('status', {}), { ok: true, method: 'status' })
  })
})

test('frame limit: too large to send rejects locally, too large to receive is refused as an error reply', async () => {
  const dir = await tempDir()
  const sock = path.join(dir, 's')
  const accepted = new Promise<net.Socket>((resolve) => {
    const srv = net.createServer((s) => (srv.close(), resolve(s)))
    srv.listen(sock)
  })
  const a = new Connection(net.createConnection(sock), { maxFrame: 4096 })
  const b = new Connection(await accepted, { maxFrame: 4096 })
  try {
    b.onRequest(async (_m, _p, payload) => new Reply({ generation: payload?.length ?? 0 }, payload && Buffer.alloc(payload.length * 2)))
    const upd = { generation: 1, disk: 'v', uid: 'uid-v', size: 1, start: 0, end: 1 }
    assert.deepEqual(await a.call('table.update', upd, { payload: Buffer.alloc(1000) }), { generation: 1000 })
    await assert.rejects(a.call('table.update', upd, { payload: Buffer.alloc(5000) }), fails('FRAME_TOO_LARGE'))
    await assert.rejects(a.call('table.update', upd, { payload: Buffer.alloc(3000) }), fails('FRAME_TOO_LARGE'))
    assert.deepEqual(await a.call('table.update', upd, { payload: Buffer.alloc(10) }), { generation: 10 })
  } finally {
    a.close()
    b.close()
    await fs.rm(dir, { recursive: true, force: true })
  }
})
