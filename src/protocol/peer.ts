// One peer over a stream socket (Unix, or TCP under TLS: a TLSSocket is a net.Socket):
// framing, request ids, replies, hello.
//
// Invariants:
//   * nothing thrown while handling incoming bytes escapes the socket's 'data' handler:
//     a frame we cannot address an answer to closes the connection, anything else is
//     answered {t:'res', id, error:{code,message}};
//   * every pending request settles exactly once: its reply, its timeout, or CLOSED;
//   * handlers only ever see params that passed validateParams;
//   * server side: nothing but an error goes out before the hello reply (requests and notes
//     the owner sends meanwhile are held), and the peer's requests are refused until then;
//   * requests and notes arriving before a handler is registered wait one event-loop turn
//     (so a client can register right after connect() resolves), then get UNKNOWN_METHOD;
//   * server side: a peer whose hello is not answered within the hello timeout (it sent
//     nothing, half a frame, or its hello is still pending) is dropped;
//   * trouble no peer can be told about goes to `report` (the controller rate-limits it).

import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { MAX_FRAME } from '../config'
import { VstorError, toVstorError } from '../errors'
import { encodeHead, FrameDecoder, type Frame, type Header } from './codec'
import type { Hello, HelloReply, Method, Notes, Params, Result } from './messages'
import { validateHello, validateParams } from './validate'

/** A handler's answer when it also returns a binary payload. */
export class Reply {
  constructor(
    public result: unknown,
    public payload?: Buffer,
  ) {}
}
export type RequestHandler = (method: string, params: unknown, payload: Buffer | undefined, conn: Connection) => Promise<unknown>
export type NoteHandler = (method: string, params: unknown, conn: Connection) => void
export type HelloHandler = (hello: Hello, conn: Connection) => HelloReply | Promise<HelloReply>

interface Pending {
  method: string
  resolve: (v: { result: never; payload?: Buffer }) => void
  reject: (e: VstorError) => void
  timer?: NodeJS.Timeout
}

/** A peer whose hello is not done this long after connecting is dropped (listen() may set another). */
export const HELLO_TIMEOUT_MS = 10_000
/** How long close() lets queued bytes drain before it destroys the socket. */
const DRAIN_MS = 2_000

/** Where connections report what they cannot answer; `key` groups lines that repeat (the controller rate-limits by it). */
let reporter: (message: string, key: string) => void = (message) => void process.stderr.write(`vstor: ${message}\n`)
export function setReporter(fn: (message: string, key: string) => void): void {
  reporter = fn
}
export function report(message: string, key: string): void {
  reporter(message, key)
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

export class Connection extends EventEmitter {
  hello: Hello | null = null
  /**
   * The peer's name from its verified TLS certificate (the CN); null on the Unix socket.
   * A server uses it as the client's identity; a client sees the controller's name.
   */
  readonly peerName: string | null
  private _closed = false
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly decoder: FrameDecoder
  private readonly maxFrame: number
  private requestHandler: RequestHandler | null = null
  private noteHandler: NoteHandler | null = null
  private deferred: (() => void)[] = []
  /** Server side: 'waiting' for the first frame, 'pending' while onHello runs; 'none' on clients. */
  private helloState: 'none' | 'waiting' | 'pending' | 'done' = 'none'
  private held: [Buffer, Buffer?][] = []
  private onHello: HelloHandler | null = null
  private readonly socketClosed: Promise<void>

  constructor(
    private readonly socket: net.Socket,
    opts: { maxFrame?: number; peerName?: string | null } = {},
  ) {
    super()
    this.peerName = opts.peerName ?? null
    this.maxFrame = opts.maxFrame ?? MAX_FRAME
    this.decoder = new FrameDecoder(this.maxFrame)
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    // EPIPE, ECONNRESET…: the peer is gone; pending requests get CLOSED.
    socket.on('error', () => this.teardown())
    socket.on('close', () => this.teardown())
  }

  get closed(): boolean {
    return this._closed
  }

  request<M extends Method>(
    method: M,
    params: Params<M>,
    opts: { payload?: Buffer; timeoutMs?: number } = {},
  ): Promise<{ result: Result<M>; payload?: Buffer }> {
    return this.exchange({ t: 'req', method, params }, method, opts.payload, opts.timeoutMs) as Promise<{
      result: Result<M>
      payload?: Buffer
    }>
  }

  async call<M extends Method>(method: M, params: Params<M>, opts?: { payload?: Buffer; timeoutMs?: number }): Promise<Result<M>> {
    return (await this.request(method, params, opts)).result
  }

  notify<N extends keyof Notes>(method: N, params: Notes[N]): void {
    if (this._closed) return
    this.send(encodeHead({ t: 'note', method, params }, 0, this.maxFrame))
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler
  }

  onNote(handler: NoteHandler): void {
    this.noteHandler = handler
  }

  /** Stop now: pending requests reject with CLOSED; bytes already queued still drain. */
  close(): void {
    this.teardown()
    this.socket.end()
    const timer = setTimeout(() => this.socket.destroy(), DRAIN_MS)
    timer.unref()
    void this.socketClosed.then(() => clearTimeout(timer))
  }

  /** @internal Resolves once the socket itself has closed. */
  whenClosed(): Promise<void> {
    return this.socketClosed
  }

  /** @internal Server side: the first frame must be a hello, answered by onHello. */
  serve(onHello: HelloHandler, helloTimeoutMs = HELLO_TIMEOUT_MS): void {
    this.helloState = 'waiting'
    const timer = setTimeout(() => {
      if (this.helloState === 'done' || this._closed) return
      report(`closing a connection: no hello within ${helloTimeoutMs} ms`, 'hello timeout')
      this.close()
    }, helloTimeoutMs)
    timer.unref()
    void this.socketClosed.then(() => clearTimeout(timer))
    this.onHello = onHello
  }

  /** @internal Client side: say hello, resolve with the (unchecked) reply. */
  sayHello(hello: Hello, timeoutMs?: number): Promise<{ result: unknown }> {
    return this.exchange({ t: 'hello', ...hello }, 'hello', undefined, timeoutMs)
  }

  private exchange(header: object, method: string, payload?: Buffer, timeoutMs?: number): Promise<{ result: never; payload?: Buffer }> {
    return new Promise((resolve, reject) => {
      if (this._closed) return reject(new VstorError('CLOSED', `the connection is closed, '${method}' was not sent`))
      const id = this.nextId++
      let head: Buffer
      try {
        head = encodeHead({ ...header, id }, payload?.length ?? 0, this.maxFrame)
      } catch (e) {
        return reject(toVstorError(e))
      }
      const p: Pending = { method, resolve, reject }
      if (timeoutMs !== undefined) {
        p.timer = setTimeout(() => {
          this.pending.delete(id)
          reject(new VstorError('TIMEOUT', `no answer to '${method}' within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      this.pending.set(id, p)
      this.send(head, payload, method !== 'hello')
    })
  }

  /** Write one frame as a single corked write; on a server still in hello, requests and notes wait. */
  private send(head: Buffer, payload?: Buffer, hold = true): void {
    if (this._closed) return
    if (hold && (this.helloState === 'waiting' || this.helloState === 'pending')) {
      this.held.push([head, payload])
      return
    }
    this.socket.cork()
    this.socket.write(head)
    if (payload && payload.length > 0) this.socket.write(payload)
    this.socket.uncork()
  }

  private reply(id: number, result: unknown, payload?: Buffer): void {
    try {
      this.send(encodeHead({ t: 'res', id, result: result ?? null }, payload?.length ?? 0, this.maxFrame), payload, false)
    } catch (e) {
      this.replyError(id, toVstorError(e)) // too large, or not JSON-able
    }
  }

  private replyError(id: number, err: VstorError): void {
    this.send(encodeHead({ t: 'res', id, error: err.toWire() }, 0, this.maxFrame), undefined, false)
  }

  /** Drop the connection because of what the peer sent; it cannot be answered. */
  private refuse(err: VstorError): void {
    report(`closing a connection: ${err.message}`, 'closing a connection')
    this.close()
  }

  private teardown(): void {
    if (this._closed) return
    this._closed = true
    this.held = []
    this.deferred = []
    for (const [id, p] of this.pending) {
      this.pending.delete(id)
      clearTimeout(p.timer)
      p.reject(new VstorError('CLOSED', `the connection closed before '${p.method}' was answered`))
    }
    this.emit('close')
  }

  private onData(chunk: Buffer): void {
    if (this._closed) return
    let frames: Frame[]
    try {
      frames = this.decoder.push(chunk)
    } catch (e) {
      return this.refuse(toVstorError(e))
    }
    for (const frame of frames) {
      if (this._closed) return
      try {
        this.dispatch(frame.header, frame.payload)
      } catch (e) {
        report(`internal error while handling a frame: ${String(e)}`, 'internal error in a frame')
        this.close()
      }
    }
  }

  private dispatch(h: Header, payload: Buffer | undefined): void {
    if (this.helloState === 'waiting') return this.firstFrame(h)
    switch (h.t) {
      case 'res':
        return this.onResponse(h, payload)
      case 'req':
        if (!isId(h.id)) return this.refuse(new VstorError('BAD_FRAME', 'a request has no numeric id'))
        if (this.helloState === 'pending')
          return this.replyError(h.id, new VstorError('BAD_REQUEST', 'requests must wait for the hello reply'))
        return this.incoming(h, h.id, payload)
      case 'note':
        if (this.helloState === 'pending') return
        return this.incoming(h, null, undefined)
      case 'hello':
        if (this.helloState !== 'none' && isId(h.id)) return this.replyError(h.id, new VstorError('BAD_REQUEST', 'hello was already said'))
        return this.refuse(new VstorError('BAD_FRAME', 'the peer sent an unexpected hello'))
      default:
        return this.refuse(new VstorError('BAD_FRAME', `unknown frame kind '${h.t}'`))
    }
  }

  private onResponse(h: Header, payload: Buffer | undefined): void {
    const p = isId(h.id) ? this.pending.get(h.id) : undefined
    if (!p) return // late (timed out) or bogus: nobody waits for it
    this.pending.delete(h.id as number)
    clearTimeout(p.timer)
    if (h.error !== undefined) p.reject(VstorError.fromWire(h.error))
    else p.resolve({ result: h.result as never, ...(payload ? { payload } : {}) })
  }

  /** A request (id set) or note: validate, then run its handler, deferred while none is registered. */
  private incoming(h: Header, id: number | null, payload: Buffer | undefined): void {
    const method = h.method
    let params: unknown
    try {
      if (typeof method !== 'string') throw new VstorError('BAD_REQUEST', `a ${h.t} has no method`)
      params = validateParams(method, h.params)
    } catch (e) {
      if (id === null) return this.refuse(toVstorError(e))
      return this.replyError(id, toVstorError(e))
    }
    const run =
      id === null ? () => this.runNote(method as string, params) : () => void this.runRequest(id, method as string, params, payload)
    const handler = id === null ? this.noteHandler : this.requestHandler
    if (handler && this.deferred.length === 0) return run()
    this.deferred.push(run)
    if (this.deferred.length === 1) {
      setImmediate(() => {
        const runs = this.deferred
        this.deferred = []
        for (const r of runs) r()
      })
    }
  }

  private async runRequest(id: number, method: string, params: unknown, payload: Buffer | undefined): Promise<void> {
    let out: unknown
    try {
      if (!this.requestHandler) throw new VstorError('UNKNOWN_METHOD', `'${method}' is not served on this side of the connection`)
      out = await this.requestHandler(method, params, payload, this)
    } catch (e) {
      if (!(e instanceof VstorError))
        report(`internal error in '${method}': ${e instanceof Error ? e.stack : String(e)}`, `internal error in ${method}`)
      return this.replyError(id, toVstorError(e))
    }
    if (out instanceof Reply) this.reply(id, out.result, out.payload)
    else this.reply(id, out)
  }

  private runNote(method: string, params: unknown): void {
    try {
      this.noteHandler?.(method, params, this)
    } catch (e) {
      report(`error in note '${method}': ${e instanceof Error ? e.stack : String(e)}`, `error in note ${method}`)
    }
  }

  private firstFrame(h: Header): void {
    const id = isId(h.id) ? h.id : null
    if (h.t !== 'hello' || id === null) {
      if (id !== null && h.t === 'req') this.replyError(id, new VstorError('BAD_REQUEST', 'the first message must be a hello'))
      return this.refuse(new VstorError('BAD_REQUEST', `the first message was a '${h.t}', not a hello`))
    }
    this.helloState = 'pending'
    const { t: _t, id: _id, ...raw } = h
    void this.answerHello(id, raw)
  }

  private async answerHello(id: number, raw: unknown): Promise<void> {
    try {
      const hello = validateHello(raw)
      const reply = await (this.onHello as HelloHandler)(hello, this)
      if (this._closed) return
      this.hello = hello
      this.send(encodeHead({ t: 'res', id, result: reply }, 0, this.maxFrame), undefined, false)
      this.helloState = 'done'
      for (const [head, payload] of this.held.splice(0)) this.send(head, payload)
    } catch (e) {
      if (!(e instanceof VstorError))
        report(`internal error in hello: ${e instanceof Error ? e.stack : String(e)}`, 'internal error in hello')
      this.replyError(id, toVstorError(e))
      this.close()
    }
  }
}

/** Stop accepting, close every connection, resolve once all of them and the server are closed. */
export async function closeServer(server: net.Server, conns: Set<Connection>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  const all = [...conns]
  for (const c of all) c.close()
  await Promise.all(all.map((c) => c.whenClosed()))
  await closed
}
