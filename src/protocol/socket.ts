// Unix-socket endpoints: the controller's listener and the clients' connect, both
// ending in a Connection that has exchanged hello; connectController picks the socket or
// TLS (tls.ts) from a ControllerAddress.
//
// Invariants: the socket file is mode 0600 in a 0755 directory; a stale socket file
// (nothing answers) is replaced, a live one is never touched; close() unlinks the
// socket file only if it is still the one this listener created.

import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { PROTOCOL_VERSION } from '../config'
import { VstorError } from '../errors'
import { isTcp, type ControllerAddress } from './address'
import type { Hello, HelloReply } from './messages'
import { closeServer, Connection, report, type HelloHandler } from './peer'
import { connectTls } from './tls'
import { validateHelloReply } from './validate'

function checkSocketPath(socketPath: string): void {
  if (Buffer.byteLength(socketPath) > 107) {
    throw new VstorError('BAD_ARGUMENT', `socket path ${socketPath} is longer than 107 bytes: choose a shorter --socket`)
  }
}

function unreachable(socketPath: string, e: NodeJS.ErrnoException): VstorError {
  const at = `cannot reach the vstor controller at ${socketPath}`
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new VstorError('CONTROLLER_UNREACHABLE', `${at}: is the controller running? try \`vstor controller start\``)
  }
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return new VstorError(
      'CONTROLLER_UNREACHABLE',
      `${at}: permission denied: run as root, or as a user that may read and write the socket (mode 0600) and enter its directory`,
    )
  }
  return new VstorError('CONTROLLER_UNREACHABLE', `${at}: ${e.code ?? e.message}: is --socket the controller's socket?`)
}

/** Open a socket; errors come back as the errno exception. */
function openSocket(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath)
    const timer = setTimeout(() => {
      s.destroy()
      reject(new VstorError('TIMEOUT', `connecting to ${socketPath} took longer than ${timeoutMs} ms`))
    }, timeoutMs)
    s.once('error', (e) => (clearTimeout(timer), reject(e)))
    s.once('connect', () => (clearTimeout(timer), s.removeAllListeners('error'), resolve(s)))
  })
}

export async function connect(
  socketPath: string,
  hello: Omit<Hello, 'protocol'>,
  opts: { timeoutMs?: number } = {},
): Promise<{ conn: Connection; reply: HelloReply }> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  checkSocketPath(socketPath)
  const socket = await openSocket(socketPath, timeoutMs).catch((e) => {
    throw e instanceof VstorError ? e : unreachable(socketPath, e)
  })
  const conn = new Connection(socket)
  try {
    const { result } = await conn.sayHello({ ...hello, protocol: PROTOCOL_VERSION }, timeoutMs)
    return { conn, reply: validateHelloReply(result) }
  } catch (e) {
    conn.close()
    throw e
  }
}

export interface ServerHandle {
  close(): Promise<void>
  connections(): Set<Connection>
}

/** Connect to the controller wherever it is: its Unix socket, or HOST:PORT over mutual TLS. */
export function connectController(
  address: ControllerAddress,
  hello: Omit<Hello, 'protocol'>,
  opts: { timeoutMs?: number } = {},
): Promise<{ conn: Connection; reply: HelloReply }> {
  return isTcp(address) ? connectTls(address, hello, opts) : connect(address.socket, hello, opts)
}

/** Several listeners as one: connections of all, close closes all. */
export function joinServers(...servers: ServerHandle[]): ServerHandle {
  return {
    connections: () => new Set(servers.flatMap((s) => [...s.connections()])),
    close: async () => {
      await Promise.all(servers.map((s) => s.close()))
    },
  }
}

/** A socket file left by a dead controller is removed; a live one is refused. */
async function clearStale(socketPath: string): Promise<void> {
  const st = await fs.lstat(socketPath).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)))
  if (!st) return
  if (!st.isSocket()) throw new VstorError('BAD_ARGUMENT', `${socketPath} exists and is not a socket: remove it or choose another --socket`)
  const code = await openSocket(socketPath, 5_000).then(
    (s) => (s.destroy(), 'ANSWERS'),
    (e: NodeJS.ErrnoException) => e.code ?? 'TIMEOUT',
  )
  if (code === 'ECONNREFUSED') return fs.unlink(socketPath).catch(() => undefined)
  if (code === 'ENOENT') return
  throw new VstorError(
    'CONTROLLER_RUNNING',
    `a controller already answers on ${socketPath}: stop it first (\`vstor controller stop\`) or use another --socket`,
  )
}

export async function listen(socketPath: string, onHello: HelloHandler, opts: { helloTimeoutMs?: number } = {}): Promise<ServerHandle> {
  checkSocketPath(socketPath)
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 })
  await clearStale(socketPath)
  const conns = new Set<Connection>()
  const server = net.createServer((socket) => {
    const conn = new Connection(socket)
    conns.add(conn)
    conn.once('close', () => conns.delete(conn))
    conn.serve(onHello, opts.helloTimeoutMs)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new VstorError('CONTROLLER_RUNNING', `a controller already listens on ${socketPath}: stop it first or use another --socket`)
          : new VstorError('START_FAILED', `cannot listen on ${socketPath}: ${e.message}`),
      ),
    )
    server.listen(socketPath, () => resolve())
  })
  // Accept errors (EMFILE…) must not crash the controller.
  server.removeAllListeners('error')
  server.on('error', (e) => report(`socket server error: ${e.message}`, 'socket server error'))
  await fs.chmod(socketPath, 0o600)
  const ino = (await fs.lstat(socketPath)).ino
  let closing: Promise<void> | null = null
  return {
    connections: () => conns,
    close: () =>
      (closing ??= (async () => {
        await closeServer(server, conns)
        // Only our own socket file: a newer controller may have replaced it.
        const st = await fs.lstat(socketPath).catch(() => null)
        if (st && st.ino === ino) await fs.unlink(socketPath).catch(() => undefined)
      })()),
  }
}
