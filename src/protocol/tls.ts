// TCP with mutual TLS beside the Unix socket: the controller's listenTls and the clients'
// connectTls. Same framing and hello as the socket (a TLSSocket is a net.Socket); the
// Connection carries the peer's certificate name (peerName).
//
// Invariants:
//   * TLS 1.3 only; both sides present a certificate from their tls dir and trust only its
//     ca.crt (the cluster CA);
//   * a client whose certificate is missing, from another CA, expired or not yet valid is
//     dropped as its handshake completes, before any byte of it is read: no Connection is
//     made for it, and the server logs one line with its address and the reason;
//   * every accepted connection has a peerName (the certificate's CN);
//   * a client checks the controller's certificate against ca.crt and the host it dialled
//     (IP or DNS SAN); each way a connection can fail is one VstorError saying what to do.
//
// Why rejectUnauthorized is false on the server: node:tls checks client certificates itself
// once OpenSSL's handshake is done ('secure') and, with rejectUnauthorized, destroys the
// socket right there without saying who or why. We make the same check at the same point
// ('secureConnection' is emitted right after 'secure') with the address and reason at hand.

import net from 'node:net'
import tls from 'node:tls'
import { PROTOCOL_VERSION } from '../config'
import { VstorError } from '../errors'
import { formatHostPort, isHostName, type TcpAddress } from './address'
import type { Hello, HelloReply } from './messages'
import { closeServer, Connection, type HelloHandler } from './peer'
import type { ServerHandle } from './socket'
import { CA_CERT, TLS_CERT, certProblem, dnField, peerCn, readTlsDir, verifyReason, type TlsFiles } from './tlsfiles'
import { validateHelloReply } from './validate'

const HANDSHAKE_MS = 10_000
/** TCP keepalive: a peer whose host vanished is noticed in about a minute, not hours. */
const KEEPALIVE_MS = 15_000
const ISSUE = 'issue a certificate with `vstor tls issue CA_DIR NAME` on the host that keeps the cluster CA and copy CA_DIR/NAME'

export interface TlsServerHandle extends ServerHandle {
  /** Where it listens (the port the kernel chose for port 0). */
  address(): { host: string; port: number }
}

function remote(s: net.Socket): string {
  const a = s.remoteAddress
  if (!a) return 'a client (address unknown: it hung up)'
  return formatHostPort(a.replace(/^::ffff:(?=\d+\.)/, ''), s.remotePort ?? 0)
}

/** Why a client with an unverified certificate is refused (for the log). */
function refusal(s: tls.TLSSocket): string {
  const c = s.getPeerCertificate()
  if (!c || Object.keys(c).length === 0) return 'it sent no certificate'
  const who = `certificate CN '${peerCn(c.subject) ?? '?'}' issued by '${peerCn(c.issuer) ?? '?'}'`
  const code = s.authorizationError as unknown as string | undefined
  const when =
    code === 'CERT_HAS_EXPIRED'
      ? ` (valid until ${new Date(c.valid_to).toISOString()})`
      : code === 'CERT_NOT_YET_VALID'
        ? ` (valid from ${new Date(c.valid_from).toISOString()})`
        : ''
  return `${verifyReason(code)}${when}; ${who}`
}

/** A failed handshake (before any certificate check), in plain words. */
function handshakeFailure(e: NodeJS.ErrnoException & { reason?: string }): string {
  switch (e.code) {
    case 'ECONNRESET':
      return 'the client hung up during the handshake (does it trust this certificate for the address it dialled?)'
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_HTTP_REQUEST':
      return 'it does not speak TLS'
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_NO_PROTOCOLS_AVAILABLE':
      return 'it offers no TLS 1.3'
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return `no handshake within ${HANDSHAKE_MS / 1000} s`
    default:
      return e.reason ?? e.message
  }
}

function listenError(e: NodeJS.ErrnoException, where: string, host: string): VstorError {
  switch (e.code) {
    case 'EADDRINUSE':
      return new VstorError('CONTROLLER_RUNNING', `${where} is in use already (another controller?): stop it or choose another --listen`)
    case 'EADDRNOTAVAIL':
      return new VstorError(
        'BAD_ARGUMENT',
        `no interface here has the address ${host}: use one of this host's addresses, or 0.0.0.0 for all`,
      )
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new VstorError('BAD_ARGUMENT', `cannot resolve ${host} for --listen: use an IP address`)
    default:
      return new VstorError('START_FAILED', `cannot listen on ${where}: ${e.message}`)
  }
}

/** The controller's TLS listener. Each accepted connection is served with onHello, like the socket's. */
export async function listenTls(
  opts: TcpAddress & { log?: (line: string) => void; helloTimeoutMs?: number },
  onHello: HelloHandler,
): Promise<TlsServerHandle> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`vstor: ${line}\n`))
  const where = formatHostPort(opts.host, opts.port)
  const files = await readTlsDir(opts.tlsDir)
  const problem = certProblem(files.x509, files.caX509)
  if (problem) {
    throw new VstorError('BAD_ARGUMENT', `cannot serve TLS with ${files.dir}/${TLS_CERT}: ${problem}; ${ISSUE} to ${files.dir}`)
  }
  const wildcard = opts.host === '0.0.0.0' || opts.host === '::'
  const named = net.isIP(opts.host) ? files.x509.checkIP(opts.host) : files.x509.checkHost(opts.host)
  if (!wildcard && !named) {
    log(
      `tls: warning: ${files.dir}/${TLS_CERT} does not name ${opts.host} (${files.x509.subjectAltName ?? 'no SANs'}): clients dialling it will refuse`,
    )
  }
  const conns = new Set<Connection>()
  const server = tls.createServer({
    key: files.key,
    cert: files.cert,
    ca: files.ca,
    requestCert: true,
    rejectUnauthorized: false, // checked below, see the top of this file
    minVersion: 'TLSv1.3',
    handshakeTimeout: HANDSHAKE_MS,
  })
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const who = remote(socket)
    const name = socket.authorized ? peerCn(socket.getPeerCertificate().subject) : null
    if (!name) {
      log(`tls: refused ${who}: ${socket.authorized ? 'its certificate has no CN' : refusal(socket)}`)
      socket.destroy()
      return
    }
    socket.setKeepAlive(true, KEEPALIVE_MS)
    socket.setNoDelay(true)
    log(`tls: accepted '${name}' from ${who}`)
    const conn = new Connection(socket, { peerName: name })
    conns.add(conn)
    conn.once('close', () => conns.delete(conn))
    conn.serve(onHello, opts.helloTimeoutMs)
  })
  server.on('tlsClientError', (e: Error, socket: tls.TLSSocket) =>
    log(`tls: handshake with ${remote(socket)} failed: ${handshakeFailure(e)}`),
  )
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, where, opts.host)))
    server.listen({ host: opts.host, port: opts.port }, () => resolve())
  })
  // Accept errors (EMFILE…) must not crash the controller.
  server.removeAllListeners('error')
  server.on('error', (e) => log(`tls: server error: ${e.message}`))
  const bound = server.address() as net.AddressInfo
  let closing: Promise<void> | null = null
  return {
    address: () => ({ host: opts.host, port: bound.port }),
    connections: () => conns,
    close: () => (closing ??= closeServer(server, conns)),
  }
}

/** The controller's certificate failed our check: which way, and what to do. */
function untrusted(e: NodeJS.ErrnoException & { cert?: tls.PeerCertificate }, target: string, host: string, files: TlsFiles): VstorError {
  if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const cn = peerCn(e.cert?.subject) ?? 'NAME'
    return new VstorError(
      'TLS_UNTRUSTED',
      `the controller at ${target} presented a certificate for '${cn}' that does not name ${host} (it names ${e.cert?.subjectaltname ?? 'nothing'}): ` +
        `connect to an address it names, or reissue it with \`vstor tls issue CA_DIR ${cn} --san ${host} --force\` and restart the controller`,
    )
  }
  const why = verifyReason(e.code)
  const fix =
    e.code === 'CERT_HAS_EXPIRED' || e.code === 'CERT_NOT_YET_VALID'
      ? 'renew it with `vstor tls issue CA_DIR NAME --force` (or check the clocks) and restart the controller'
      : `is ${files.dir} from this cluster (its ${CA_CERT} is '${dnField(files.caX509.subject)}')?`
  return new VstorError('TLS_UNTRUSTED', `the controller at ${target} is not trusted: ${why}: ${fix}`)
}

/** Errors before the handshake is done. */
function connectFailure(e: NodeJS.ErrnoException & { reason?: string }, target: string, host: string, files: TlsFiles): VstorError {
  const unreachable = (why: string): VstorError =>
    new VstorError('CONTROLLER_UNREACHABLE', `cannot reach the vstor controller at ${target}: ${why}`)
  switch (e.code) {
    case 'ECONNREFUSED':
      return unreachable(`nothing listens there: is the controller running with \`vstor controller start --listen ${target}\`?`)
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return unreachable(`no route to it (${e.code}): check the address, the network and firewalls`)
    case 'ETIMEDOUT':
      return unreachable('no answer (ETIMEDOUT): check the address, the network and firewalls')
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return unreachable(`cannot resolve the host name ${host}`)
    case 'ECONNRESET':
    case 'EPIPE':
      return unreachable("it closed the connection during the TLS handshake: is that the controller's --listen address?")
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return unreachable("it does not speak TLS: is that the controller's --listen address?")
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return untrusted(e, target, host, files)
  }
  if (e.code && /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|INVALID_PURPOSE)/.test(e.code)) return untrusted(e, target, host, files)
  if (e.code?.startsWith('ERR_SSL_')) return refused(target, files, e.reason ?? e.message)
  return unreachable(e.message)
}

/** The controller dropped us during the hello: it did not accept our certificate. Say why if we can tell. */
function refused(target: string, files: TlsFiles, alert?: string): VstorError {
  const name = dnField(files.x509.subject) ?? '?'
  const why = certProblem(files.x509, files.caX509) ?? alert ?? 'see the controller log for why'
  return new VstorError(
    'TLS_REFUSED',
    `the controller at ${target} refused this host's certificate ${files.dir}/${TLS_CERT} ('${name}'): ${why}; ${ISSUE} to ${files.dir}`,
  )
}

function openTls(addr: TcpAddress, files: TlsFiles, target: string, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: addr.host,
      port: addr.port,
      ca: files.ca,
      cert: files.cert,
      key: files.key,
      minVersion: 'TLSv1.3',
      // SNI carries names only (RFC 6066); an IP is still checked against the IP SANs.
      ...(isHostName(addr.host) ? { servername: addr.host } : {}),
    })
    const timer = setTimeout(() => {
      s.destroy()
      reject(
        new VstorError(
          'CONTROLLER_UNREACHABLE',
          `cannot reach the vstor controller at ${target}: no answer within ${timeoutMs} ms: check the address, the network and firewalls`,
        ),
      )
    }, timeoutMs)
    const fail = (e: NodeJS.ErrnoException): void => {
      clearTimeout(timer)
      reject(connectFailure(e, target, addr.host, files))
    }
    const closed = (): void => fail(Object.assign(new Error('closed before the handshake finished'), { code: 'ECONNRESET' }))
    s.once('error', fail)
    s.once('close', closed)
    s.once('secureConnect', () => {
      clearTimeout(timer)
      s.off('error', fail)
      s.off('close', closed)
      resolve(s)
    })
  })
}

/** Connect over TLS and say hello. Rejects with CONTROLLER_UNREACHABLE, TLS_UNTRUSTED, TLS_REFUSED, BAD_ARGUMENT (tls dir). */
export async function connectTls(
  addr: TcpAddress,
  hello: Omit<Hello, 'protocol'>,
  opts: { timeoutMs?: number } = {},
): Promise<{ conn: Connection; reply: HelloReply }> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const target = formatHostPort(addr.host, addr.port)
  const files = await readTlsDir(addr.tlsDir)
  const socket = await openTls(addr, files, target, timeoutMs)
  socket.setKeepAlive(true, KEEPALIVE_MS)
  socket.setNoDelay(true)
  // The server's verdict on our certificate arrives after our side of the handshake (TLS 1.3):
  // as an alert, or as the connection closing before the hello reply.
  const seen: { alert?: NodeJS.ErrnoException & { reason?: string } } = {}
  socket.on('error', (e) => (seen.alert ??= e))
  const conn = new Connection(socket, { peerName: peerCn(socket.getPeerCertificate().subject) })
  try {
    const { result } = await conn.sayHello({ ...hello, protocol: PROTOCOL_VERSION }, timeoutMs)
    return { conn, reply: validateHelloReply(result) }
  } catch (e) {
    conn.close()
    if (e instanceof VstorError && e.code === 'CLOSED') {
      const a = seen.alert
      if (a?.code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') throw refused(target, files, 'it got no certificate')
      throw refused(target, files, a?.code?.startsWith('ERR_SSL_') ? (a.reason ?? a.message) : undefined)
    }
    throw e
  }
}
