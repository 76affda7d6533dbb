// CLI requests over TCP without a certificate never reach the controller: a real controller
// (`vstor controller start --listen 127.0.0.1:PORT`, no root needed) gets a hello followed by
// `device.add` and `controller.stop` from a client speaking plain TCP and from a TLS client that
// presents no certificate. Neither gets a vstor byte back, neither request runs (the pool stays
// empty, the controller keeps running), and the log says who was refused and why. A client
// with the cluster's certificate, on the same port, is served (the port was the right one).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import tls from 'node:tls'
import { PROTOCOL_VERSION } from '../../src/config'
import { connectController } from '../../src/protocol/connection'
import type { DeviceInfo } from '../../src/protocol/messages'
import { tempInstance, vstorAsync } from '../cli/run'
import { makePki } from '../helpers/pki'
import { waitFor } from '../helpers/proc'
import { frame, headers } from '../helpers/rawsocket'

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/** Send bytes once connected (plain or after the TLS handshake); resolve with what came back once the peer closed. */
function exchange(socket: net.Socket, ready: string, bytes: Buffer): Promise<{ received: Buffer; ready: boolean }> {
  return new Promise((resolve) => {
    const got: Buffer[] = []
    let ok = false
    socket.on(ready, () => {
      ok = true
      socket.write(bytes)
    })
    socket.on('data', (b: Buffer) => got.push(b))
    socket.on('error', () => undefined)
    socket.on('close', () => resolve({ received: Buffer.concat(got), ready: ok }))
  })
}

test('over TCP, a hello and CLI requests without a certificate are dropped unread; with one they are served', async (t) => {
  const pki = await makePki(t)
  const inst = tempInstance()
  t.after(async () => {
    await vstorAsync(['controller', 'stop'], inst.env)
    fs.rmSync(inst.dir, { recursive: true, force: true })
  })
  const port = await freePort()
  const start = await vstorAsync(['controller', 'start', '--listen', `127.0.0.1:${port}`, '--tls-dir', pki.ctl], inst.env)
  assert.equal(start.code, 0, start.stderr)
  const pool = path.join(inst.dir, 'pool.img')
  fs.writeFileSync(pool, '')
  fs.truncateSync(pool, 16 * 2 ** 20)
  const requests = Buffer.concat([
    frame({ t: 'hello', id: 1, protocol: PROTOCOL_VERSION, role: 'cli' }),
    frame({ t: 'req', id: 2, method: 'device.add', params: { path: pool } }),
    frame({ t: 'req', id: 3, method: 'controller.stop', params: {} }),
  ])
  const log = (): string => fs.readFileSync(path.join(inst.dataDir, 'controller.log'), 'utf8')

  const plain = await exchange(net.connect(port, '127.0.0.1'), 'connect', requests)
  assert.ok(plain.ready)
  assert.ok(
    headers(plain.received).every((h) => h.undecodable || typeof h.t !== 'string'),
    `a vstor answer to plain TCP: ${plain.received.toString('hex')}`,
  )
  await waitFor('the log line', () => /tls: handshake with 127\.0\.0\.1:\d+ failed: it does not speak TLS\n/.test(log()))

  const ca = fs.readFileSync(path.join(pki.ca, 'ca.crt'))
  const anon = await exchange(tls.connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.3' }), 'secureConnect', requests)
  assert.deepEqual(anon, { received: Buffer.alloc(0), ready: true }, 'the handshake completed, then nothing came back')
  await waitFor('the log line', () => /tls: refused 127\.0\.0\.1:\d+: it sent no certificate\n/.test(log()))

  // neither request ran: the controller answers, with an empty pool
  const list = await vstorAsync(['device', 'list', '--json'], inst.env)
  assert.equal(list.code, 0, list.stderr)
  assert.deepEqual(JSON.parse(list.stdout) as DeviceInfo[], [])
  assert.doesNotMatch(log(), /device .* added|stopping/)

  const { conn } = await connectController({ host: '127.0.0.1', port, tlsDir: pki.good }, { role: 'cli' })
  try {
    assert.deepEqual(await conn.call('device.list', {}), [])
  } finally {
    conn.close()
  }
  assert.match(log(), /tls: accepted 'hosta' from 127\.0\.0\.1:\d+\n/)
})
