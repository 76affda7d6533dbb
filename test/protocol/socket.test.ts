import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { PROTOCOL_VERSION } from '../../src/config'
import { VstorError } from '../../src/errors'
import { connect, listen } from '../../src/protocol/connection'
import { hello, RawClient, startServer, stillServes, tempDir } from './fixture'

const fails =
  (c: string, text = '') =>
  (e: unknown) =>
    e instanceof VstorError && e.code === c && e.message.includes(text)
/** A socket file nothing listens on: a process that bound it died without unlinking. */
function staleSocket(sock: string): void {
  const code = `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`
  spawnSync(process.execPath, ['-e', code])
}
const REPLY = { protocol: PROTOCOL_VERSION, controllerId: 'c', generation: 0 }

test('listen makes the directory 0755 and the socket 0600; close unlinks it', async () => {
  const fx = await startServer()
  try {
    assert.equal((await fs.stat(path.dirname(fx.socket))).mode & 0o777, 0o755)
    const st = await fs.lstat(fx.socket)
    assert.ok(st.isSocket())
    assert.equal(st.mode & 0o777, 0o600)
    await stillServes(fx.socket)
    await fx.server.close()
    await assert.rejects(fs.lstat(fx.socket), { code: 'ENOENT' })
  } finally {
    await fx.close()
  }
})

test('close ends open connections: their pending requests fail with CLOSED', async () => {
  const fx = await startServer()
  try {
    const { conn } = await connect(fx.socket, { role: 'cli' })
    const p = assert.rejects(conn.call('disk.map', { name: 'hang' }), fails('CLOSED'))
    await new Promise((r) => setTimeout(r, 20))
    await fx.server.close()
    await p
    assert.equal(fx.server.connections().size, 0)
  } finally {
    await fx.close()
  }
})

test('a stale socket file is replaced; a live one is refused with CONTROLLER_RUNNING', async () => {
  const dir = await tempDir()
  const sock = path.join(dir, 'vstor.sock')
  try {
    staleSocket(sock)
    assert.ok((await fs.lstat(sock)).isSocket())
    const server = await listen(sock, () => REPLY)
    try {
      await assert.rejects(
        listen(sock, () => REPLY),
        fails('CONTROLLER_RUNNING', `a controller already answers on ${sock}`),
      )
      // the refused second listener left the live socket alone
      const { conn, reply } = await connect(sock, { role: 'cli' })
      assert.deepEqual(reply, REPLY)
      conn.close()
    } finally {
      await server.close()
    }
    await fs.writeFile(sock, 'not a socket')
    await assert.rejects(
      listen(sock, () => REPLY),
      fails('BAD_ARGUMENT', 'is not a socket'),
    )
    assert.equal(await fs.readFile(sock, 'utf8'), 'not a socket')
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
  }
})

test('connect to nothing is CONTROLLER_UNREACHABLE with the documented hint', async () => {
  const dir = await tempDir()
  try {
    const sock = path.join(dir, 'none.sock')
    const hint = `cannot reach the vstor controller at ${sock}: is the controller running? try \`vstor controller start\``
    await assert.rejects(
      connect(sock, { role: 'cli' }),
      (e: unknown) => e instanceof VstorError && e.code === 'CONTROLLER_UNREACHABLE' && e.message === hint,
    )
    // ECONNREFUSED: a socket file with no listener
    staleSocket(sock)
    await assert.rejects(
      connect(sock, { role: 'cli' }),
      (e: unknown) => e instanceof VstorError && e.code === 'CONTROLLER_UNREACHABLE' && e.message === hint,
    )
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
  }
})

test('onHello refusing: VstorError crosses, a bug is INTERNAL; the connection closes', async () => {
  const fx = await startServer()
  try {
    await assert.rejects(connect(fx.socket, { role: 'agent', agentId: 'refuse' }), fails('BAD_NAME', 'agent id refused'))
    await assert.rejects(connect(fx.socket, { role: 'agent', agentId: 'crash' }), fails('INTERNAL', 'hello handler bug'))
    const raw = await RawClient.open(fx.socket)
    await raw.write(hello(1, { role: 'agent', agentId: 'refuse' }))
    await raw.closed
    assert.deepEqual(raw.frames[0]?.header.error, { code: 'BAD_NAME', message: 'agent id refused' })
    await stillServes(fx.socket)
  } finally {
    await fx.close()
  }
})

test('what the server sends during onHello waits until after the hello reply', async () => {
  const dir = await tempDir()
  const sock = path.join(dir, 'vstor.sock')
  const server = await listen(sock, (_h, conn) => {
    conn.notify('agent.open', { disks: ['early'] })
    void conn.call('agent.sync', { generation: 3 }).catch(() => undefined)
    return REPLY
  })
  try {
    const raw = await RawClient.open(sock)
    await raw.write(hello(1))
    const frames = await raw.waitFrames(3)
    assert.deepEqual(
      frames.map((f) => f.header.t),
      ['res', 'note', 'req'],
    )
    assert.deepEqual(frames[0]?.header.result, REPLY)
    raw.destroy()
  } finally {
    await server.close()
    await fs.rm(dir, { recursive: true, force: true })
  }
})

test('a request arriving right behind the hello reply waits for the client to register its handler', async () => {
  const dir = await tempDir()
  const sock = path.join(dir, 'vstor.sock')
  let result: Promise<unknown> = Promise.resolve()
  const server = await listen(sock, (_h, conn) => {
    result = conn.call('disk.remove', { generation: 2, disk: 'v', uid: 'uid-v' })
    return REPLY
  })
  try {
    const { conn } = await connect(sock, { role: 'agent', agentId: 'a' })
    conn.onRequest(async (method) => ({ generation: method === 'disk.remove' ? 2 : 0 }))
    assert.deepEqual(await result, { generation: 2 })
    conn.close()
  } finally {
    await server.close()
    await fs.rm(dir, { recursive: true, force: true })
  }
})
