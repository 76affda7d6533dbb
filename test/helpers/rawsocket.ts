// Speaking (or mangling) the wire protocol by hand, to check the controller
// survives peers that send garbage.
//
// Frame: u32 BE bodyLength | u32 BE headerLength | header JSON | payload,
// where bodyLength counts header + payload (src/protocol/messages.ts).

import net from 'node:net'

export function frame(header: object | string, payload: Buffer = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(8)
  prefix.writeUInt32BE(json.length + payload.length, 0)
  prefix.writeUInt32BE(json.length, 4)
  return Buffer.concat([prefix, json, payload])
}

/** Decode whole frames' headers from received bytes (a trailing partial frame is ignored). */
export function headers(buf: Buffer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  let at = 0
  while (at + 8 <= buf.length) {
    const body = buf.readUInt32BE(at)
    const hl = buf.readUInt32BE(at + 4)
    if (at + 8 + body > buf.length) break
    try {
      out.push(JSON.parse(buf.subarray(at + 8, at + 8 + hl).toString('utf8')) as Record<string, unknown>)
    } catch {
      out.push({ undecodable: true })
    }
    at += 8 + body
  }
  return out
}

export interface Exchange {
  received: Buffer
  /** The controller closed the connection. */
  closedByPeer: boolean
  error?: string
}

/**
 * Connect, send each chunk in turn (with afterReply: the first, then the rest
 * once something came back), then collect what comes back until the
 * peer closes or settleMs passes with the socket idle; then close our end.
 */
export function exchange(socketPath: string, chunks: Buffer[], opts: { settleMs?: number; afterReply?: boolean } = {}): Promise<Exchange> {
  const settleMs = opts.settleMs ?? 1500
  return new Promise((resolve) => {
    const sock = net.connect(socketPath)
    const got: Buffer[] = []
    let done = false
    let timer: NodeJS.Timeout | undefined
    const finish = (closedByPeer: boolean, error?: string): void => {
      if (done) return
      done = true
      if (timer) clearTimeout(timer)
      sock.destroy()
      resolve({ received: Buffer.concat(got), closedByPeer, error })
    }
    const arm = (): void => {
      if (timer) clearTimeout(timer)
      timer = setTimeout(() => finish(false), settleMs)
    }
    // With afterReply, the first chunk (a hello) is answered before the rest goes out.
    let rest = opts.afterReply ? chunks.slice(1) : []
    sock.on('connect', () => {
      for (const c of opts.afterReply ? chunks.slice(0, 1) : chunks) sock.write(c)
      arm()
    })
    sock.on('data', (b: Buffer) => {
      got.push(b)
      for (const c of rest) sock.write(c)
      rest = []
      arm()
    })
    sock.on('end', () => finish(true))
    sock.on('close', () => finish(true))
    sock.on('error', (e) => finish(true, String(e)))
  })
}
