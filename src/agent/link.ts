// The agent's link to the controller.
//
// Invariants:
//   * controller requests (table.load/update, disk.add/remove) are applied
//     one at a time, in arrival order, and acked with the generation after;
//   * losing the controller never stops mapped I/O: the link reconnects with
//     backoff (100 ms doubling to 2 s) and says its generation in hello, so
//     the controller reloads it when it missed changes;
//   * a fault waits for a connection at most faultTimeoutMs in total from
//     its first attempt, then rejects (the I/O gets EIO);
//   * the epoch from the first hello is presented on every reconnect; a
//     controller that refuses it (FENCED: an admin forgot this agent) stops
//     the link for good and the state fails every request with EIO;
//   * on a clean stop the link says bye, so the controller drops its record.

import { EventEmitter } from 'node:events'
import { VstorError } from '../errors'
import { connectController, type Connection, type TcpAddress } from '../protocol/connection'
import type { ControllerToAgentMethods, DiscardReply, Fault, FaultReply, Params, PushAck, Result } from '../protocol/messages'
import type { AgentState, Applied } from './state'

type P<M extends keyof ControllerToAgentMethods> = ControllerToAgentMethods[M][0]

export interface LinkOptions {
  socket: string
  /** The controller over TCP with mutual TLS (vstor mount --controller); else the socket. */
  controller?: TcpAddress
  agentId: string
  mountpoint: string
  faultTimeoutMs: number
  /** How long start() waits for the first table.load before it asks with agent.sync. */
  loadWaitMs?: number
  /** The FUSE front end in use, for the controller's status. */
  frontend?: string
  /** Requests served so far (monotonic, all disks): sent with each ack of a pushed change. */
  served?: () => number
  /** Writes finished so far (monotonic, all disks; counted before a write leaves its range): sent with each ack of a pushed change. */
  written?: () => number | undefined
}

export class Link extends EventEmitter {
  private conn: Connection | null = null
  private stopped = false
  private queue: Promise<unknown> = Promise.resolve()
  private backoff = 100
  private timer: NodeJS.Timeout | null = null
  private openDisks: string[] = []
  private missing: string[] = []
  /** Given by the controller at the first hello; presented on every reconnect. */
  private epoch: number | undefined
  /** The controller run whose table this agent holds (presented on reconnect). */
  private boot: number | undefined
  /** Full table loads applied so far. */
  private loads = 0
  state!: AgentState

  constructor(private readonly opts: LinkOptions) {
    super()
  }

  get connected(): boolean {
    return this.conn !== null && !this.conn.closed
  }

  /** First connection: throws CONTROLLER_UNREACHABLE; resolves once the table is loaded. */
  async start(state: AgentState): Promise<void> {
    this.state = state
    await this.connectOnce()
  }

  stop(): void {
    this.stopped = true
    this.emit('stopped')
    if (this.timer) clearTimeout(this.timer)
    this.conn?.close()
    this.conn = null
  }

  /** Clean unmount: tell the controller this agent holds nothing any more (best effort, bounded), then stop. */
  async bye(): Promise<void> {
    const conn = this.conn
    if (conn && !conn.closed) await conn.call('agent.bye', {}, { timeoutMs: 2_000 }).catch(() => undefined)
    this.stop()
  }

  /** Send a fault and wait for its answer, riding out disconnects up to faultTimeoutMs. */
  fault(f: Fault): Promise<FaultReply> {
    return this.ride('fault', f, `fault ${f.kind} on ${f.disk}`)
  }

  /** Whole units back to the zero state; same patience as a fault. */
  discard(p: { disk: string; uid: string; offset: number; length: number }): Promise<DiscardReply> {
    return this.ride('discard', p, `discard on ${p.disk}`)
  }

  /** Ask the controller to make its table commits durable (on fsync after lazy commits); same patience as a fault. Resolves with the durable generation. */
  async metaSync(): Promise<number> {
    return (await this.ride('metadata.sync', {}, 'metadata.sync')).generation
  }

  private async ride<M extends 'fault' | 'metadata.sync' | 'discard'>(method: M, params: Params<M>, what: string): Promise<Result<M>> {
    const deadline = Date.now() + this.opts.faultTimeoutMs
    for (;;) {
      if (this.stopped) throw new VstorError('CLOSED', 'the agent is stopping')
      const left = deadline - Date.now()
      if (left <= 0) throw new VstorError('TIMEOUT', `controller did not answer ${what} in time`)
      const conn = this.conn && !this.conn.closed ? this.conn : await this.waitConnected(left)
      if (!conn) continue
      try {
        return await conn.call(method, params, { timeoutMs: Math.max(1, deadline - Date.now()) })
      } catch (e) {
        // A dropped connection: wait for the next one and resend; anything else is final.
        if (!(e instanceof VstorError) || e.code !== 'CLOSED') throw e
      }
    }
  }

  /** Tell the controller which disks are open here (also re-sent after each reconnect). */
  setOpen(disks: string[]): void {
    this.openDisks = disks
    if (this.connected) this.conn!.notify('agent.open', { disks })
  }

  /** Tell the controller which pool devices this host lacks (also re-sent after each reconnect). */
  setMissing(uuids: string[]): void {
    this.missing = uuids
    if (this.connected) this.conn!.notify('agent.devices', { missing: uuids })
  }

  private waitConnected(ms: number): Promise<Connection | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => settle(null), ms)
      const onStop = (): void => settle(null)
      const settle = (c: Connection | null): void => {
        clearTimeout(t)
        this.off('connected', settle)
        this.off('stopped', onStop)
        resolve(c)
      }
      this.once('connected', settle)
      this.once('stopped', onStop)
    })
  }

  private async connectOnce(): Promise<void> {
    let got
    try {
      got = await connectController(this.opts.controller ?? { socket: this.opts.socket }, {
        role: 'agent',
        agentId: this.opts.agentId,
        mountpoint: this.opts.mountpoint,
        pid: process.pid,
        generation: this.state.generation,
        ...(this.epoch !== undefined ? { epoch: this.epoch } : {}),
        ...(this.boot !== undefined ? { boot: this.boot } : {}),
        ...(this.opts.frontend ? { frontend: this.opts.frontend } : {}),
        devices: await this.state.devices.found(),
      })
    } catch (e) {
      if (e instanceof VstorError && e.code === 'FENCED') this.fenced(e)
      throw e
    }
    const { conn, reply } = got
    this.epoch ??= reply.epoch
    this.conn = conn
    conn.onRequest((method, params, payload) => this.handle(method, params, payload))
    conn.once('close', () => this.onClose(conn))
    this.backoff = 100
    // the controller keeps our last report while we are away; a new process starts with none open
    conn.notify('agent.open', { disks: this.openDisks })
    if (this.missing.length) conn.notify('agent.devices', { missing: this.missing })
    // Another controller run may have lost lazy commits and reused our generation: a new boot means a full load.
    const newBoot = reply.boot !== undefined && reply.boot !== this.boot
    if (reply.generation !== this.state.generation || newBoot) await this.awaitLoad(conn, reply.generation, newBoot)
    this.boot = reply.boot
    this.emit('connected', conn)
  }

  /** Refused for a stale epoch: never serve this table again. */
  private fenced(e: VstorError): void {
    this.emit('failed', `${e.message}; every request now fails with EIO until this mount is unmounted`)
    this.state.fence()
    this.stop()
  }

  /** The controller sends table.load after hello when generations differ; ask explicitly if it did not. */
  private async awaitLoad(conn: Connection, generation: number, mustLoad = false): Promise<void> {
    const base = this.loads
    const loaded = (): boolean => this.loads > base || (!mustLoad && this.state.generation === generation)
    const wait = (ms: number): Promise<boolean> =>
      new Promise((resolve) => {
        if (loaded()) return resolve(true)
        const t = setTimeout(() => {
          this.off('applied', on)
          resolve(loaded())
        }, ms)
        const on = (): void => {
          if (!loaded()) return
          clearTimeout(t)
          this.off('applied', on)
          resolve(true)
        }
        this.on('applied', on)
      })
    if (await wait(this.opts.loadWaitMs ?? 2000)) return
    if (conn.closed) return
    await conn.call('agent.sync', { generation: this.state.generation }, { timeoutMs: 30_000 })
    await this.queue
    if (!loaded() && !(await wait(30_000))) {
      throw new VstorError('TIMEOUT', `controller did not send the table (generation ${generation}); check \`vstor status\``)
    }
  }

  private onClose(conn: Connection): void {
    if (this.conn === conn) this.conn = null
    if (this.stopped) return
    this.emit('disconnected')
    this.schedule()
  }

  private schedule(): void {
    if (this.stopped || this.timer) return
    const delay = this.backoff
    this.backoff = Math.min(this.backoff * 2, 2000)
    this.timer = setTimeout(() => {
      this.timer = null
      if (this.stopped) return
      this.connectOnce().catch(() => {
        if (this.conn && this.conn.closed) this.conn = null
        if (!this.connected) this.schedule()
      })
    }, delay)
  }

  /** Controller -> agent requests, applied strictly in arrival order. */
  private handle(method: string, params: unknown, payload: Buffer | undefined): Promise<unknown> {
    const run = async (): Promise<PushAck> => {
      const s = this.state
      let applied: Applied | null = null
      switch (method) {
        case 'table.load':
          await s.load(params as P<'table.load'>, payload)
          this.loads++
          break
        case 'table.update':
          applied = await s.update(params as P<'table.update'>, payload)
          break
        case 'disk.add':
          await s.add(params as P<'disk.add'>, payload)
          break
        case 'disk.remove':
          await s.drop(params as P<'disk.remove'>)
          break
        case 'table.replace':
          await s.replace(params as P<'table.replace'>, payload)
          break
        default:
          throw new VstorError('UNKNOWN_METHOD', `agent does not handle '${method}'`)
      }
      this.emit('applied', method)
      const served = this.opts.served?.()
      const written = this.opts.written?.()
      return {
        generation: s.generation,
        ...(served !== undefined ? { served } : {}),
        ...(written !== undefined ? { written } : {}),
        ...(applied ?? {}),
      }
    }
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => {})
    // A change we could not apply means our copy is off: ask for a full reload (generation 0 always differs).
    p.catch((e: Error) => {
      this.emit('failed', `${method} failed: ${e.message}; asking for a full reload`)
      const conn = this.conn
      if (method !== 'table.load' && conn && !conn.closed) conn.call('agent.sync', { generation: 0 }).catch(() => {})
    })
    return p
  }
}
