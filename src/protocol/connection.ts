// CONTRACT STUB — implemented by the protocol module. Other modules rely on
// exactly this API.
import type { EventEmitter } from 'node:events'
import type net from 'node:net'
import type { Hello, HelloReply, Method, Params, Result, Notes } from './messages'

/** A handler's answer when it also returns a binary payload. */
export declare class Reply {
  constructor(result: unknown, payload?: Buffer)
  result: unknown
  payload?: Buffer
}
export type RequestHandler = (method: string, params: unknown, payload: Buffer | undefined, conn: Connection) => Promise<unknown>
export type NoteHandler = (method: string, params: unknown, conn: Connection) => void

/**
 * One peer over a stream socket. Either side may send requests; replies carry
 * the request id. Decoding errors answer with an error reply where the id is
 * known, else close the connection; they never throw into the caller.
 */
export declare class Connection extends EventEmitter {
  constructor(socket: net.Socket, opts?: { maxFrame?: number })
  /** Set on the server side once the peer's hello was accepted. */
  hello: Hello | null
  readonly closed: boolean
  /** Send a request; rejects with VstorError (the peer's {code,message}, TIMEOUT, or CLOSED). */
  request<M extends Method>(method: M, params: Params<M>, opts?: { payload?: Buffer; timeoutMs?: number }): Promise<{ result: Result<M>; payload?: Buffer }>
  /** request() returning only the result. */
  call<M extends Method>(method: M, params: Params<M>, opts?: { payload?: Buffer; timeoutMs?: number }): Promise<Result<M>>
  notify<N extends keyof Notes>(method: N, params: Notes[N]): void
  /** Requests from the peer. Return a value, a Reply, or throw a VstorError. */
  onRequest(handler: RequestHandler): void
  onNote(handler: NoteHandler): void
  close(): void
  // emits 'close' (no args) once
}

/** Connect and say hello. Throws VstorError CONTROLLER_UNREACHABLE ("is the controller running? try `vstor controller start`"), PROTOCOL_VERSION, TIMEOUT. */
export declare function connect(socketPath: string, hello: Omit<Hello, 'protocol'>, opts?: { timeoutMs?: number }): Promise<{ conn: Connection; reply: HelloReply }>

export interface ServerHandle {
  close(): Promise<void>
  connections(): Set<Connection>
}
/**
 * Listen on a Unix socket (mkdir -p its directory, remove a stale socket file
 * that nothing answers on; refuse with CONTROLLER_RUNNING if something answers).
 * onHello validates the hello and returns the reply (or throws to refuse).
 */
export declare function listen(socketPath: string, onHello: (hello: Hello, conn: Connection) => HelloReply | Promise<HelloReply>): Promise<ServerHandle>
