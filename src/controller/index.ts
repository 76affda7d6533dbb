// The controller's entry points: run in this process, start detached, stop.
// Invariants: the database is verified and loaded before the socket listens;
// stop lets jobs reach a step boundary, closes the server (the socket and the
// TLS listener of --listen, which share one onHello), then the database, and
// resolves runController. Files it creates are mode 0600 (umask 077).

import fs from 'node:fs'
import path from 'node:path'
import { pidRunning, spawnDetached, signalFailed, signalReady } from '../daemon'
import { VstorError, toVstorError } from '../errors'
import { Hurry } from '../hurry'
import { raiseProcess, realtimeSwitch } from '../priority'
import { connect, formatHostPort, joinServers, listen, listenTls } from '../protocol/connection'
import type { HelloHandler, ServerHandle, TcpAddress } from '../protocol/connection'
import { readTlsDir } from '../protocol/tlsfiles'
import { setReporter } from '../protocol/peer'
import { Agents } from './agents'
import type { Ctx } from './context'
import { DeviceIo } from './devio'
import { onHello } from './handlers'
import { registerKinds } from './jobs/kinds'
import { Jobs } from './jobs/runner'
import { loadState } from './load'
import { flushLog, log } from './log'
import { Outbox } from './outbox'
import { dbFile, openDatabase } from './schema'
import { Space } from './space'

export interface ControllerOptions {
  socket: string
  dataDir: string
  refreshIntervalMs?: number
  noSpaceTimeoutMs?: number
  /** How long changes every agent must apply first wait for acks (default 10 s). */
  agentTimeoutMs?: number
  /** Also serve TCP with mutual TLS here (--listen HOST:PORT --tls-dir DIR). */
  listen?: TcpAddress
  /** A client whose hello is not done this long after connecting is dropped (default 10 s). */
  helloTimeoutMs?: number
}

/** Run in this process until stopped (SIGTERM/SIGINT or controller.stop). */
export async function runController(opts: ControllerOptions): Promise<void> {
  let db: Awaited<ReturnType<typeof openDatabase>> | null = null
  let server: ServerHandle | null = null
  let ctx: Ctx | null = null
  const oldUmask = process.umask(0o077) // database, WAL, logs and backups: root only
  const prio = raiseProcess(log) // before the database's threads start: they inherit it (see priority.ts)
  try {
    db = await openDatabase(opts.dataDir)
    const state = await loadState(db)
    // Commits a killed controller made lazily are in the WAL: make them durable before anyone relies on them.
    // A new boot number, durable, so no agent mistakes a generation this run reuses for one it holds.
    await db.tx(() =>
      db!
        .run("INSERT INTO meta (key, value) VALUES ('boot', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        .then(() => undefined),
    )
    state.boot = Number((await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'boot'"))?.value ?? 1)
    state.durable = state.generation
    const agents = new Agents(db)
    await agents.loadFromDb()
    const io = new DeviceIo()
    let stop!: () => void
    const stopped = new Promise<void>((r) => (stop = r))
    const c: Ctx = {
      state,
      agents,
      io,
      outbox: new Outbox(state, agents, () => state.durable),
      space: new Space(state, agents, io, () => c.jobs.active().length > 0), // every job copies
      jobs: new Jobs(() => c),
      socket: opts.socket,
      dataDir: opts.dataDir,
      database: dbFile(opts.dataDir),
      startedAt: new Date(),
      noSpaceTimeoutMs: opts.noSpaceTimeoutMs ?? 5_000,
      refreshIntervalMs: opts.refreshIntervalMs ?? 60_000,
      agentTimeoutMs: opts.agentTimeoutMs ?? 10_000,
      busy: new Map(),
      hurry: new Hurry(realtimeSwitch(log, 'process')),
      stop: () => stop(),
    }
    ctx = c
    const kick = agents.onChange
    agents.onChange = () => {
      kick()
      c.space.kick()
    }
    registerKinds(c.jobs)
    await c.jobs.load()
    c.jobs.resume() // before serving: a move fenced before a crash holds its range again first
    setReporter(log) // per-connection trouble goes to the log, rate-limited
    const hello: HelloHandler = (h, conn) => onHello(c, h, conn)
    server = await listen(opts.socket, hello, { helloTimeoutMs: opts.helloTimeoutMs })
    if (opts.listen) server = joinServers(server, await listenTls({ ...opts.listen, log, helloTimeoutMs: opts.helloTimeoutMs }, hello))
    c.space.kick()
    const tick = setInterval(() => c.outbox.refresh(c.refreshIntervalMs), Math.max(100, Math.min(c.refreshIntervalMs, 5_000)))
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
        `, database ${c.database}, generation ${state.generation}, nice ${prio.nice}` +
        (prio.autogroup !== null ? ` (autogroup ${prio.autogroup})` : ''),
    )
    signalReady()
    await stopped
    clearInterval(tick)
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    // jobs stop at a step boundary (they resume on the next start); then no mutation runs any more
    await c.jobs.stop()
    await c.space.stop()
    await state.lock.run(async () => {
      const srv = server as ServerHandle
      for (const conn of srv.connections()) conn.close()
      await srv.close()
      server = null
      removeSocket(opts.socket)
    })
    flushLog()
    log('controller stopped')
  } catch (e) {
    const err = toVstorError(e)
    signalFailed(err.message)
    throw err
  } finally {
    process.umask(oldUmask)
    if (server) await server.close().catch(() => undefined)
    ctx?.hurry.clear()
    if (ctx) await ctx.io.closeAll().catch(() => undefined)
    if (db) await db.close().catch(() => undefined)
  }
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
  if (opts.agentTimeoutMs !== undefined) args.push('--agent-timeout', durationFlag(opts.agentTimeoutMs))
  if (opts.listen) {
    await readTlsDir(opts.listen.tlsDir) // a missing or broken tls dir is the caller's mistake: say so here, exit 1
    args.push('--listen', formatHostPort(opts.listen.host, opts.listen.port), '--tls-dir', opts.listen.tlsDir)
  }
  if (opts.helloTimeoutMs !== undefined) args.push('--hello-timeout', durationFlag(opts.helloTimeoutMs))
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  // The log names devices, disks and agents: root only, like the database (an older 0644 one too).
  const logFile = path.join(opts.dataDir, 'controller.log')
  fs.closeSync(fs.openSync(logFile, 'a', 0o600))
  fs.chmodSync(logFile, 0o600)
  // A move's copy keeps 4 device requests in flight on libuv's pool (jobs/copy.ts); SQLite needs threads beside them.
  process.env.UV_THREADPOOL_SIZE ??= '8'
  return spawnDetached({ args, logFile, readyTimeoutMs: 15_000 })
}

/**
 * Ask the controller to stop and wait until its process is gone (10 s): it closes the database
 * after the socket, and a restore that copies a backup over vstor.db before that would be
 * overwritten by the last checkpoint.
 */
export async function stopController(socket: string): Promise<void> {
  const { conn } = await connect(socket, { role: 'cli' })
  let pid = 0
  try {
    pid = (await conn.call('status', {}, { timeoutMs: 10_000 })).controller.pid
    await conn.call('controller.stop', {}, { timeoutMs: 10_000 })
  } catch (e) {
    if (!(e instanceof VstorError && e.code === 'CLOSED')) throw e
  } finally {
    conn.close()
  }
  const deadline = Date.now() + 10_000
  while (fs.existsSync(socket) || (pid > 0 && pidRunning(pid))) {
    if (Date.now() > deadline) throw new VstorError('TIMEOUT', `the controller on ${socket} did not stop within 10 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
