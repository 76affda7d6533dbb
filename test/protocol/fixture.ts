// A small controller stand-in on a real Unix socket in a temp dir, and a raw
// client that speaks (or mangles) frames by hand.

import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { PROTOCOL_VERSION } from '../../src/config'
import { VstorError } from '../../src/errors'
import { FrameDecoder, type Frame } from '../../src/protocol/codec'
import { connect, listen, Reply, type Connection, type ServerHandle } from '../../src/protocol/connection'
import type { Hello } from '../../src/protocol/messages'

export interface Fixture {
  dir: string
  socket: string
  server: ServerHandle
  hellos: Hello[]
  /** Requests the server's handler saw: [method, params]. */
  seen: [string, unknown][]
  notes: [string, unknown][]
  close(): Promise<void>
}

export async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'vstor-proto-'))
}

/**
 * Server handler: 'status' answers {ok}; 'disk.map' name 'missing' throws NOT_FOUND,
 * 'boom' throws a plain Error, 'hang' never answers; 'agent.sync' echoes;
 * 'table.load' answers with the request payload reversed as its payload.
 * Hello from agentId 'slow' takes 100 ms, 'refuse' is refused, 'crash' hits a bug.
 */
export async function startServer(): Promise<Fixture> {
  const dir = await tempDir()
  const socket = path.join(dir, 'run', 'vstor.sock')
  const hellos: Hello[] = []
  const seen: [string, unknown][] = []
  const notes: [string, unknown][] = []
  const server = await listen(socket, async (hello, conn) => {
    if (hello.agentId === 'slow') await new Promise((r) => setTimeout(r, 100))
    if (hello.agentId === 'refuse') throw new VstorError('BAD_NAME', 'agent id refused')
    if (hello.agentId === 'crash') throw new Error('hello handler bug')
    hellos.push(hello)
    conn.onRequest(async (method, params, payload) => {
      seen.push([method, params])
      const p = params as { name?: string; generation?: number }
      if (method === 'disk.map' && p.name === 'missing') throw new VstorError('NOT_FOUND', 'no disk missing: see vstor disk list')
      if (method === 'disk.map' && p.name === 'boom') throw new Error('handler bug')
      if (method === 'disk.map' && p.name === 'hang') return new Promise(() => undefined)
      if (method === 'agent.sync') return { generation: p.generation }
      if (method === 'table.load') return new Reply({ generation: 1 }, payload ? Buffer.from(payload).reverse() : undefined)
      return { ok: true, method }
    })
    conn.onNote((method, params) => notes.push([method, params]))
    return { protocol: PROTOCOL_VERSION, controllerId: 'ctl-1', generation: 7 }
  })
  return {
    dir,
    socket,
    server,
    hellos,
    seen,
    notes,
    close: async () => {
      await server.close()
      await fs.rm(dir, { recursive: true, force: true })
    },
  }
}

/** A well-behaved client still gets an answer from the server. */
export async function stillServes(socket: string): Promise<unknown> {
  const { conn } = await connect(socket, { role: 'cli' }, { timeoutMs: 5000 })
  try {
    return await conn.call('status', {}, { timeoutMs: 5000 })
  } finally {
    conn.close()
  }
}

export function frame(header: object | string, payload?: Buffer): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(8)
  prefix.writeUInt32BE(json.length + (payload?.length ?? 0), 0)
  prefix.writeUInt32BE(json.length, 4)
  return Buffer.concat([prefix, json, payload ?? Buffer.alloc(0)])
}

export const hello = (id = 1, extra: object = {}): Buffer => frame({ t: 'hello', id, protocol: PROTOCOL_VERSION, role: 'cli', ...extra })

/** A raw socket client: frames it received, and whether the server closed on it. */
export class RawClient {
  readonly frames: Frame[] = []
  readonly closed: Promise<void>
  private readonly decoder = new FrameDecoder()
  private waiters: (() => void)[] = []

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => {
      this.frames.push(...this.decoder.push(b))
      for (const w of this.waiters.splice(0)) w()
    })
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
  }

  static open(socketPath: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socketPath)
      s.once('error', reject)
      s.once('connect', () => resolve(new RawClient(s)))
    })
  }

  write(b: Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(b, () => resolve()))
  }

  /** Resolve once n frames have arrived (or reject if the socket closes first). */
  async waitFrames(n: number): Promise<Frame[]> {
    while (this.frames.length < n) {
      if (this.socket.destroyed) throw new Error(`socket closed after ${this.frames.length} of ${n} frames`)
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), this.closed])
    }
    return this.frames
  }

  destroy(): void {
    this.socket.destroy()
  }
}

export type { Connection }
