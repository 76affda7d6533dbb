// Mutual TLS for real: listenTls/connectController on loopback (no root needed), then a
// controller in one network namespace and the CLI in another (root). Certificates come
// from the same code as `vstor tls init/issue` (test/helpers/pki.ts).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import tls from 'node:tls'
import { PROTOCOL_VERSION } from '../../src/config'
import { VstorError } from '../../src/errors'
import { connectController, listen, listenTls, type TlsServerHandle } from '../../src/protocol/connection'
import type { Status } from '../../src/protocol/messages'
import { BIN, ROOT } from '../cli/run'
import { netLab } from '../helpers/netns'
import { makePki, type Pki } from '../helpers/pki'

const REPLY = { protocol: PROTOCOL_VERSION, controllerId: 'c', generation: 0 }
const fails =
  (code: string, ...texts: (string | RegExp)[]) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof VstorError, `a VstorError, got ${String(e)}`)
    assert.equal(e.code, code, e.message)
    for (const t of texts) assert.match(e.message, typeof t === 'string' ? new RegExp(escape(t)) : t)
    return true
  }
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

interface Served {
  server: TlsServerHandle
  port: number
  log: string[]
  /** peerName of each connection that reached onHello. */
  names: (string | null)[]
}

async function serve(t: { after(fn: () => Promise<void>): void }, tlsDir: string, host = '127.0.0.1'): Promise<Served> {
  const log: string[] = []
  const names: (string | null)[] = []
  const server = await listenTls({ host, port: 0, tlsDir, log: (l) => log.push(l) }, (_hello, conn) => {
    names.push(conn.peerName)
    conn.onRequest(async (method) => ({ method, peer: conn.peerName }))
    return REPLY
  })
  t.after(() => server.close())
  return { server, port: server.address().port, log, names }
}

/** A raw TLS client that trusts the CA but presents no certificate; resolves when the server drops it. */
function noCertClient(port: number, pki: Pki): Promise<{ secured: boolean; got: number }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(path.join(pki.ca, 'ca.crt')), minVersion: 'TLSv1.3' })
    let secured = false
    let got = 0
    s.on('secureConnect', () => {
      secured = true
      s.write(Buffer.from('\0\0\0\x10\0\0\0\x10{"t":"hello"}  ')) // a request the server must never read
    })
    s.on('data', (b: Buffer) => (got += b.length))
    s.on('error', () => undefined)
    s.on('close', () => resolve({ secured, got }))
  })
}

test('loopback: a good certificate is accepted and each side sees the other by its certificate name', async (t) => {
  const pki = await makePki(t)
  const srv = await serve(t, pki.ctl)
  const { conn, reply } = await connectController({ host: '127.0.0.1', port: srv.port, tlsDir: pki.good }, { role: 'cli' })
  try {
    assert.deepEqual(reply, REPLY)
    assert.equal(conn.peerName, 'ctl')
    assert.deepEqual(srv.names, ['hosta'])
    assert.deepEqual(await conn.call('status', {}), { method: 'status', peer: 'hosta' })
    assert.match(srv.log.join('\n'), /^tls: accepted 'hosta' from 127\.0\.0\.1:\d+$/m)
  } finally {
    conn.close()
  }
  // the Unix socket has no certificate: peerName is null on both ends
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-proto-'))
  const sock = path.join(dir, 'vstor.sock')
  let serverSide: string | null | undefined
  const unix = await listen(sock, (_h, c) => ((serverSide = c.peerName), REPLY))
  try {
    const u = await connectController({ socket: sock }, { role: 'cli' })
    assert.equal(u.conn.peerName, null)
    assert.equal(serverSide, null)
    u.conn.close()
  } finally {
    await unix.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('loopback: no certificate, another CA, expired, not yet valid: dropped in the handshake, one log line each', async (t) => {
  const pki = await makePki(t)
  const srv = await serve(t, pki.ctl)
  const at = (tlsDir: string) => ({ host: '127.0.0.1', port: srv.port, tlsDir })

  const raw = await noCertClient(srv.port, pki)
  assert.deepEqual(raw, { secured: true, got: 0 }, 'the handshake completed, then the server closed without a byte')
  await assert.rejects(
    connectController(at(pki.foreign), { role: 'cli' }),
    fails('TLS_REFUSED', "refused this host's certificate", "issued by 'vstor cluster CA", 'vstor tls issue'),
  )
  await assert.rejects(
    connectController(at(pki.expired), { role: 'cli' }),
    fails('TLS_REFUSED', `${pki.expired}/tls.crt ('old')`, 'it expired on 2021-01-01T00:00:00.000Z', 'vstor tls issue'),
  )
  await assert.rejects(connectController(at(pki.future), { role: 'cli' }), fails('TLS_REFUSED', 'is not valid before', 'check the clocks'))
  assert.deepEqual(srv.names, [], 'no refused client reached hello')
  assert.equal(srv.server.connections().size, 0)

  const refused = srv.log.filter((l) => l.startsWith('tls: refused'))
  assert.equal(refused.length, 4, srv.log.join('\n'))
  const [none, foreign, expired, early] = refused as [string, string, string, string]
  assert.match(none, /^tls: refused 127\.0\.0\.1:\d+: it sent no certificate$/)
  assert.match(foreign, /^tls: refused 127\.0\.0\.1:\d+: its certificate is not signed by this cluster's CA; certificate CN 'stranger'/)
  assert.match(
    expired,
    /^tls: refused 127\.0\.0\.1:\d+: its certificate has expired \(valid until 2021-01-01T00:00:00\.000Z\); certificate CN 'old'/,
  )
  assert.match(early, /^tls: refused 127\.0\.0\.1:\d+: its certificate is not valid yet .*; certificate CN 'early'/)

  // still serving good clients
  const { conn } = await connectController(at(pki.good), { role: 'cli' })
  conn.close()
})

test('loopback: the client refuses a controller certificate that does not name the address or is from another CA', async (t) => {
  const pki = await makePki(t)
  const wrongIp = await pki.issue('elsewhere', ['127.0.0.2'])
  const srv = await serve(t, wrongIp)
  await assert.rejects(
    connectController({ host: '127.0.0.1', port: srv.port, tlsDir: pki.good }, { role: 'cli' }),
    fails('TLS_UNTRUSTED', "certificate for 'elsewhere' that does not name 127.0.0.1", '--san 127.0.0.1 --force'),
  )
  assert.deepEqual(srv.names, [])
  const strange = await pki.issue('strangectl', ['127.0.0.1'], pki.other)
  const other = await serve(t, strange)
  await assert.rejects(
    connectController({ host: '127.0.0.1', port: other.port, tlsDir: pki.good }, { role: 'cli' }),
    fails('TLS_UNTRUSTED', "its certificate is not signed by this cluster's CA", `is ${pki.good} from this cluster`),
  )
  assert.deepEqual(other.names, [])
  // a controller whose own certificate every client would refuse does not start
  await assert.rejects(
    listenTls({ host: '127.0.0.1', port: 0, tlsDir: pki.expired }, () => REPLY),
    fails('BAD_ARGUMENT', 'cannot serve TLS', 'it expired on'),
  )
})

test('loopback: unreachable, not TLS, and unusable tls dirs are clear errors', async (t) => {
  const pki = await makePki(t)
  // a port nothing listens on
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()))
  const closedPort = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  await assert.rejects(
    connectController({ host: '127.0.0.1', port: closedPort, tlsDir: pki.good }, { role: 'cli' }),
    fails('CONTROLLER_UNREACHABLE', `at 127.0.0.1:${closedPort}: nothing listens there`, '--listen'),
  )
  // something that is not TLS
  const plain = net.createServer((s) => s.resume().end('HTTP/1.0 400 Bad Request\r\n\r\n'))
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()))
  t.after(() => new Promise<void>((r) => plain.close(() => r())))
  const plainPort = (plain.address() as net.AddressInfo).port
  await assert.rejects(
    connectController({ host: '127.0.0.1', port: plainPort, tlsDir: pki.good }, { role: 'cli' }),
    fails('CONTROLLER_UNREACHABLE', /does not speak TLS|closed the connection during the TLS handshake/),
  )
  const at = (tlsDir: string) => connectController({ host: '127.0.0.1', port: closedPort, tlsDir }, { role: 'cli' })
  await assert.rejects(
    at(pki.noCert),
    fails('BAD_ARGUMENT', `${pki.noCert} has no tls.crt, tls.key: --tls-dir must hold ca.crt, tls.crt, tls.key`, 'vstor tls issue'),
  )
  await assert.rejects(at(path.join(pki.dir, 'none')), fails('BAD_ARGUMENT', 'is not a directory'))
  fs.chmodSync(path.join(pki.good, 'tls.key'), 0o644)
  await assert.rejects(at(pki.good), fails('BAD_ARGUMENT', 'is readable by others (mode 0644): chmod 600'))
})

test('two namespaces: the CLI on host B reaches the controller on host A over TLS; refusals are logged with address and reason', async (t) => {
  const lab = await netLab(t)
  if (!lab) return
  const a = await lab.ns()
  const b = await lab.ns()
  const link = await lab.veth(a, b)
  const unnamed = link.a.ip.replace(/\.1$/, '.3') // an address of host A its certificate does not name
  await lab.addAddress(link.a, unnamed)
  const pki = await makePki(t, { ctlSans: [link.a.ip] })
  const run = path.join(pki.dir, 'run')
  const dataDir = path.join(pki.dir, 'data')
  const socket = path.join(run, 'vstor.sock')
  const vstorIn = (ns: typeof a, args: string[]) => lab.run(ns, process.execPath, [BIN, ...args], { cwd: ROOT, timeoutMs: 60_000 })
  const start = await vstorIn(a, [
    'controller',
    'start',
    '--socket',
    socket,
    '--data-dir',
    dataDir,
    '--listen',
    '0.0.0.0:7420',
    '--tls-dir',
    pki.ctl,
  ])
  assert.equal(start.code, 0, start.stderr)
  lab.defer(() => vstorIn(a, ['controller', 'stop', '--socket', socket]))
  const controllerLog = (): string => fs.readFileSync(path.join(dataDir, 'controller.log'), 'utf8')
  const status = (tlsDir: string, host = link.a.ip, extra: string[] = []) =>
    vstorIn(b, ['status', '--controller', `${host}:7420`, '--tls-dir', tlsDir, '--socket', path.join(pki.dir, 'b.sock'), ...extra])

  const ok = await status(pki.good, link.a.ip, ['--json'])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal((JSON.parse(ok.stdout) as Status).controller.socket, socket)
  assert.match(controllerLog(), new RegExp(`tls: accepted 'hosta' from ${escape(link.b.ip)}:\\d+\\n`))

  const expired = await status(pki.expired)
  assert.equal(expired.code, 3)
  assert.match(
    expired.stderr,
    /^vstor: the controller at 198\.18\.\d+\.1:7420 refused this host's certificate .*it expired on 2021-01-01.*vstor tls issue/,
  )
  const foreign = await status(pki.foreign, link.a.ip, ['--json'])
  assert.equal(foreign.code, 3)
  assert.equal((JSON.parse(foreign.stdout) as { error: { code: string } }).error.code, 'TLS_REFUSED')
  const noCert = await status(pki.noCert)
  assert.equal(noCert.code, 1)
  assert.match(
    noCert.stderr,
    /^vstor: .*nocert has no tls\.crt, tls\.key: --tls-dir must hold ca\.crt, tls\.crt, tls\.key; issue a certificate with `vstor tls issue/,
  )
  const noDir = await vstorIn(b, ['status', '--controller', `${link.a.ip}:7420`, '--socket', path.join(pki.dir, 'b.sock')])
  assert.equal(noDir.code, 1)
  assert.match(noDir.stderr, /^vstor: --controller needs --tls-dir DIR/)
  // a client that sends no certificate at all (the CLI always does): a raw TLS client from host B
  const script =
    `const s=require('tls').connect({host:'${link.a.ip}',port:7420,ca:require('fs').readFileSync(process.argv[1]),minVersion:'TLSv1.3'});` +
    `s.on('error',()=>{});s.on('close',()=>process.exit(0))`
  const raw = await lab.run(b, process.execPath, ['-e', script, path.join(pki.ca, 'ca.crt')], { timeoutMs: 30_000 })
  assert.equal(raw.code, 0, raw.stderr)

  const ip = escape(link.b.ip)
  const refused = controllerLog()
    .split('\n')
    .filter((l) => l.includes('tls: refused'))
  assert.equal(refused.length, 3, controllerLog())
  assert.match(
    refused[0] ?? '',
    new RegExp(`tls: refused ${ip}:\\d+: its certificate has expired \\(valid until 2021-01-01T00:00:00.000Z\\)`),
  )
  assert.match(refused[1] ?? '', new RegExp(`tls: refused ${ip}:\\d+: its certificate is not signed by this cluster's CA`))
  assert.match(refused[2] ?? '', new RegExp(`tls: refused ${ip}:\\d+: it sent no certificate`))

  // the address host A has but its certificate does not name: the client refuses the controller
  const wrong = await status(pki.good, unnamed, ['--json'])
  assert.equal(wrong.code, 3)
  const err = (JSON.parse(wrong.stdout) as { error: { code: string; message: string } }).error
  assert.equal(err.code, 'TLS_UNTRUSTED')
  assert.match(err.message, new RegExp(`certificate for 'ctl' that does not name ${escape(unnamed)}`))

  // the link down: unreachable, with a hint; up again: served again
  await lab.setLink(link.b, 'down')
  const down = await status(pki.good)
  assert.equal(down.code, 3)
  assert.match(
    down.stderr,
    /^vstor: cannot reach the vstor controller at 198\.18\.\d+\.1:7420: no route to it .*check the address, the network and firewalls/,
  )
  await lab.setLink(link.b, 'up')
  const again = await status(pki.good)
  assert.equal(again.code, 0, again.stderr)
})
