// A tiny stand-in for the controller, built on the real protocol listen():
// answers hello, pushes a table.load to each agent, and records faults.

import { listen, type Connection, type ServerHandle } from '../../src/protocol/connection'
import type { AgentDevice, Fault, FaultReply, PushAck } from '../../src/protocol/messages'
import { PROTOCOL_VERSION } from '../../src/config'
import { Table, type Extent } from '../../src/table/table'

export interface FakeDisk {
  name: string
  size: number
  extents: Extent[]
}

export class FakeController {
  server!: ServerHandle
  agent: Connection | null = null
  generation = 1
  readonly faults: Fault[] = []
  /** metadata.sync barriers asked for (an fsync after allocations). */
  metaSyncs = 0
  readonly notes: [string, unknown][] = []
  hellos = 0
  /** The last agent hello (front end, pid, ...). */
  lastHello: { frontend?: string } | null = null
  onFault: (f: Fault) => Promise<FaultReply> = async () => ({ action: 'deny' })
  private waiters: ((c: Connection) => void)[] = []

  constructor(
    readonly socket: string,
    public devices: AgentDevice[],
    public disks: FakeDisk[],
  ) {}

  async start(): Promise<void> {
    this.server = await listen(this.socket, (hello, conn) => {
      conn.onRequest(async (method, params) => {
        if (method === 'fault') {
          this.faults.push(params as Fault)
          return this.onFault(params as Fault)
        }
        if (method === 'agent.sync') return { generation: this.generation }
        if (method === 'metadata.sync') {
          this.metaSyncs++
          return { generation: this.generation }
        }
        throw new Error(`fake controller: no ${method}`)
      })
      conn.onNote((method, params) => this.notes.push([method, params]))
      // Push the table right after the hello reply, as the controller does when generations differ.
      if (hello.role === 'agent' && hello.generation !== this.generation) setImmediate(() => void this.load(conn).catch(() => {}))
      if (hello.role === 'agent') {
        this.hellos++
        this.lastHello = hello as { frontend?: string }
        this.agent = conn
        for (const w of this.waiters.splice(0)) w(conn)
      }
      return { protocol: PROTOCOL_VERSION, controllerId: 'fake', generation: this.generation }
    })
  }

  nextAgent(): Promise<Connection> {
    return new Promise((r) => this.waiters.push(r))
  }

  async load(conn: Connection): Promise<void> {
    const bufs = this.disks.map((d) => Table.encode(d.extents))
    await conn.request(
      'table.load',
      {
        generation: this.generation,
        durable: this.generation,
        devices: this.devices,
        disks: this.disks.map((d, i) => ({
          name: d.name,
          uid: `uid-${d.name}`,
          size: d.size,
          generation: this.generation,
          bytes: bufs[i]!.length,
        })),
      },
      { payload: Buffer.concat(bufs) },
    )
  }

  /** Push a change to one disk's [start, end) (normalized via Table.plan); the agent's reply. */
  async update(disk: string, start: number, end: number, extents: Extent[], lazy = false): Promise<PushAck> {
    const d = this.disks.find((x) => x.name === disk)!
    const t = new Table(d.size, d.extents)
    const c = t.plan(start, end, extents)
    t.apply(c)
    d.extents = t.all()
    this.generation++
    const r = await this.agent!.request(
      'table.update',
      { generation: this.generation, disk, uid: `uid-${disk}`, size: d.size, start: c.start, end: c.end, lazy },
      { payload: Table.encode(c.extents) },
    )
    return r.result
  }

  async addDisk(d: FakeDisk): Promise<void> {
    this.disks.push(d)
    this.generation++
    await this.agent!.request(
      'disk.add',
      { generation: this.generation, disk: d.name, uid: `uid-${d.name}`, size: d.size },
      { payload: Table.encode(d.extents) },
    )
  }

  async removeDisk(name: string): Promise<void> {
    this.disks = this.disks.filter((d) => d.name !== name)
    this.generation++
    await this.agent!.request('disk.remove', { generation: this.generation, disk: name, uid: `uid-${name}` })
  }
}
