// The controller's entry points: run in this process, start detached, stop.
// Invariants: the database is verified and loaded before the socket listens;
// the TLS listener (--listen) serves the same onHello as the socket; stop closes
// both first, then the database, and resolves runController.

import fs from 'node:fs'
import path from 'node:path'
import { PROTOCOL_VERSION } from '../config'
import { spawnDetached, signalFailed, signalReady } from '../daemon'
import { VstorError, toVstorError } from '../errors'
import { connect, formatHostPort, joinServers, listen, listenTls } from '../protocol/connection'
import type { HelloHandler, ServerHandle, TcpAddress } from '../protocol/connection'
import { readTlsDir } from '../protocol/tlsfiles'
import type { Hello, HelloReply } from '../protocol/messages'
import { Agents } from './agents'
import type { Ctx } from './context'
import { attach } from './handlers'
import { log } from './log'
import { dbFile, openDatabase } from './schema'
import { State } from './state'

export interface ControllerOptions {
  socket: string
  dataDir: string
  refreshIntervalMs?: number
  noSpaceTimeoutMs?: number
  /** Also serve TCP with mutual TLS here (--listen HOST:PORT --tls-dir DIR). */
  listen?: TcpAddress
}

/** Run in this process until stopped (SIGTERM/SIGINT or controller.stop). */
export async function runController(opts: ControllerOptions): Promise<void> {
  let db: Awaited<ReturnType<typeof openDatabase>> | null = null
  let server: ServerHandle | null = null
  try {
    db = await openDatabase(opts.dataDir)
    const state = await State.load(db)
    let stop!: () => void
    const stopped = new Promise<void>((r) => (stop = r))
    const ctx: Ctx = {
      state,
      agents: new Agents(state),
      socket: opts.socket,
      dataDir: opts.dataDir,
      database: dbFile(opts.dataDir),
      startedAt: new Date(),
      noSpaceTimeoutMs: opts.noSpaceTimeoutMs ?? 5_000,
      refreshIntervalMs: opts.refreshIntervalMs ?? 60_000,
      stop: () => stop(),
    }
    const hello: HelloHandler = (h, conn) => onHello(ctx, h, conn)
    server = await listen(opts.socket, hello)
    if (opts.listen) server = joinServers(server, await listenTls({ ...opts.listen, log }, hello))
    const tick = setInterval(
      () =>
        void state.lock.run(async () => ctx.agents.refresh(ctx.refreshIntervalMs)).catch((e: Error) => log(`refresh failed: ${e.message}`)),
      Math.max(100, Math.min(ctx.refreshIntervalMs, 5_000)),
    )
    const onSignal = (sig: string) => {
      log(`${sig} received, stopping`)
      stop()
    }
    const onTerm = () => onSignal('SIGTERM')
    const onInt = () => onSignal('SIGINT')
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onInt)
    log(
      `controller ${state.controllerId} started: pid ${process.pid}, socket ${opts.socket}` +
        (opts.listen ? `, tls ${formatHostPort(opts.listen.host, opts.listen.port)} (${opts.listen.tlsDir})` : '') +
        `, database ${ctx.database}, generation ${state.generation}`,
    )
    signalReady()
    await stopped
    clearInterval(tick)
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    // let a running mutation finish its commit before closing the database
    await state.lock.run(async () => {
      const srv = server as ServerHandle
      for (const c of srv.connections()) c.close()
      await srv.close()
      server = null
      removeSocket(opts.socket)
    })
    log('controller stopped')
  } catch (e) {
    const err = toVstorError(e)
    signalFailed(err.message)
    throw err
  } finally {
    if (server) await server.close().catch(() => undefined)
    if (db) await db.close().catch(() => undefined)
  }
}

function onHello(ctx: Ctx, hello: Hello, conn: Parameters<typeof attach>[1]): HelloReply {
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw new VstorError(
      'PROTOCOL_VERSION',
      `the peer speaks protocol ${hello.protocol}, this controller ${PROTOCOL_VERSION}: use the same vstor version`,
    )
  }
  attach(ctx, conn)
  if (hello.role === 'agent') {
    const a = ctx.agents.register(conn, hello)
    // after the hello reply went out: reload an agent that is behind
    if (a.generation !== ctx.state.generation) setImmediate(() => void ctx.agents.load(a, `hello at generation ${a.generation}`))
  }
  return { protocol: PROTOCOL_VERSION, controllerId: ctx.state.controllerId, generation: ctx.state.generation }
}

function removeSocket(socket: string): void {
  try {
    if (fs.statSync(socket).isSocket()) fs.unlinkSync(socket)
  } catch {
    // gone already
  }
}

function durationFlag(ms: number): string {
  return `${ms}ms`
}

/** Start detached and resolve once the child is ready (socket answers). */
export async function startControllerDetached(opts: ControllerOptions): Promise<{ pid: number }> {
  const args = ['controller', 'start', '--foreground', '--socket', opts.socket, '--data-dir', opts.dataDir]
  if (opts.refreshIntervalMs !== undefined) args.push('--refresh-interval', durationFlag(opts.refreshIntervalMs))
  if (opts.noSpaceTimeoutMs !== undefined) args.push('--no-space-timeout', durationFlag(opts.noSpaceTimeoutMs))
  if (opts.listen) {
    await readTlsDir(opts.listen.tlsDir) // a missing or broken tls dir is the caller's mistake: say so here, exit 1
    args.push('--listen', formatHostPort(opts.listen.host, opts.listen.port), '--tls-dir', opts.listen.tlsDir)
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  return spawnDetached({ args, logFile: path.join(opts.dataDir, 'controller.log'), readyTimeoutMs: 15_000 })
}

/** Ask the controller to stop and wait until its socket is gone (10 s). */
export async function stopController(socket: string): Promise<void> {
  const { conn } = await connect(socket, { role: 'cli' })
  try {
    await conn.call('controller.stop', {}, { timeoutMs: 10_000 })
  } catch (e) {
    if (!(e instanceof VstorError && e.code === 'CLOSED')) throw e
  } finally {
    conn.close()
  }
  const deadline = Date.now() + 10_000
  while (fs.existsSync(socket)) {
    if (Date.now() > deadline) throw new VstorError('TIMEOUT', `the controller on ${socket} did not stop within 10 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
