// A fake agent for controller tests: says hello as an agent, acks every push,
// keeps its own copy of the tables (built only from what it was sent) and a
// log of events in order.

import { connect, type Connection } from '../../src/protocol/connection'
import type { Fault, FaultReply } from '../../src/protocol/messages'
import { Table } from '../../src/table/table'

export interface Push {
  method: string
  params: Record<string, unknown>
}

export class FakeAgent {
  readonly tables = new Map<string, Table>()
  readonly pushes: Push[] = []
  readonly events: string[] = []
  generation = 0
  /** Delay before acking a table.update (ms). */
  updateDelayMs = 0
  /** Refuse table.update requests (as a confused agent would). */
  failUpdates = false
  /** Called as each push arrives (this process runs the controller too: a test can look at its threads then). */
  onPush?: (push: Push) => void

  private constructor(readonly conn: Connection) {}

  /** The epoch the controller gave this agent (present it to reconnect as the same process). */
  epoch = 0
  /** The controller run it talked to. */
  boot = 0

  /** Say hello as agent `id`; with `epoch`, as a reconnect of a process that has a table at `generation`. */
  static async connect(socket: string, id = 'agent-1', generation = 0, epoch?: number, boot?: number): Promise<FakeAgent> {
    let agent: FakeAgent | null = null
    const { conn, reply } = await connect(socket, {
      role: 'agent',
      agentId: id,
      mountpoint: '/mnt/' + id,
      pid: 4242,
      generation,
      ...(epoch !== undefined ? { epoch } : {}),
      ...(boot !== undefined ? { boot } : {}),
    })
    agent = new FakeAgent(conn)
    agent.generation = generation
    agent.epoch = reply.epoch ?? 0
    agent.boot = reply.boot ?? 0
    const a = agent
    conn.onRequest(async (method, params, payload) => a.handle(method, params as Record<string, unknown>, payload ?? Buffer.alloc(0)))
    return agent
  }

  private async handle(method: string, p: Record<string, unknown>, payload: Buffer): Promise<unknown> {
    this.pushes.push({ method, params: p })
    this.onPush?.({ method, params: p })
    const gen = p.generation as number
    if (method === 'table.load') {
      this.tables.clear()
      let off = 0
      for (const d of p.disks as { name: string; size: number; generation: number; bytes: number }[]) {
        this.tables.set(d.name, Table.fromBuffer(d.size, payload.subarray(off, off + d.bytes), d.generation))
        off += d.bytes
      }
    } else if (method === 'table.update') {
      if (this.updateDelayMs) await new Promise((r) => setTimeout(r, this.updateDelayMs))
      if (this.failUpdates) throw new Error('refusing table.update')
      const t = this.tables.get(p.disk as string)
      if (!t) throw new Error(`update for unknown disk ${String(p.disk)}`)
      t.apply({ start: p.start as number, end: p.end as number, extents: Table.decodeExtents(payload) }, gen)
    } else if (method === 'disk.add') {
      this.tables.set(p.disk as string, Table.fromBuffer(p.size as number, payload, gen))
    } else if (method === 'disk.remove') {
      this.tables.delete(p.disk as string)
    } else if (method === 'table.replace') {
      this.tables.set(p.disk as string, Table.fromBuffer(p.size as number, payload, gen))
    }
    this.generation = gen
    this.events.push(`ack ${method}${p.lazy ? ' lazy' : ''}`)
    return { generation: gen }
  }

  async fault(f: Omit<Fault, 'generation'>): Promise<FaultReply> {
    const r = await this.conn.call('fault', { ...f, generation: this.generation }, { timeoutMs: 30_000 })
    this.events.push(`reply ${r.action}`)
    return r
  }

  count(method: string): number {
    return this.pushes.filter((p) => p.method === method).length
  }

  close(): void {
    this.conn.close()
  }
}
