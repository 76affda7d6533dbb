// Benchmarks for agents on other hosts: push fan-out (one table change to 1, 10 and 100 connected
// agents, p50/p99 until the last ack) and the fault round trip over TLS against the Unix socket.
// Run alone with `node dist/bench/remote.js [--quick]`; `npm run bench` runs them with the meta part.
//
// Invariants:
//   * each section runs against its own controller process (`vstor controller start`, a real
//     daemon) on its own temp dir, stopped and removed before the section returns (killed if
//     this process exits first);
//   * simulated agents are protocol clients in this process (role 'agent') that answer every push
//     at once: they measure the controller and the transport, not an agent's table work;
//   * every time is performance.now() of this process; a sample is one change (or fault) from
//     the request to the condition named, never an average over several.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { pidAlive } from '../src/daemon'
import { initCa, issueCert } from '../src/cli/tls'
import { connectController, type Connection, type ControllerAddress } from '../src/protocol/connection'
import { run } from './fio'
import { percentile, remoteLines } from './report'
import { VSTOR_BIN, waitFor } from './targets'

const MiB = 2 ** 20

export interface Dist {
  p50: number
  p99: number
}
export interface FanoutPoint {
  agents: number
  changes: number
  /** extent.set sent → the last agent's ack written (commit + push + every ack), ms */
  lastAck: Dist
  /** the first agent got the push → the last agent's ack written (the fan-out itself), ms */
  spread: Dist
}
export interface TransportFault {
  faults: number
  /** fault sent → reply (allocate, commit, push, the agent's ack, reply), ms */
  fault: Dist
  /** a bare request round trip (agent.sync), ms */
  request: Dist
}
export interface RemoteResult {
  fanout: FanoutPoint[]
  faults: { unix: TransportFault; tls: TransportFault }
}

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

const dist = (xs: number[]): Dist => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) })

/** A simulated agent: acks every push at once and notes when the last table.update arrived and was acked. */
class SimAgent {
  generation = 0
  gotAt = 0
  ackedAt = 0
  private constructor(readonly conn: Connection) {}

  static async connect(address: ControllerAddress, id: string): Promise<SimAgent> {
    const { conn } = await connectController(address, {
      role: 'agent',
      agentId: id,
      mountpoint: `/bench/${id}`,
      pid: process.pid,
      generation: 0,
    })
    const a = new SimAgent(conn)
    conn.onRequest(async (method, params) => {
      const now = performance.now()
      if (method === 'table.update') a.gotAt = now
      a.generation = Math.max(a.generation, (params as { generation: number }).generation)
      a.ackedAt = performance.now()
      return { generation: a.generation }
    })
    return a
  }
}

/** A controller daemon on its own dir; with tls, also listening on 127.0.0.1 with mutual TLS. */
class Ctl {
  readonly socket: string
  readonly dataDir: string
  cli!: Connection
  tcp: ControllerAddress | null = null
  clientTls = ''
  pid = 0

  constructor(readonly dir: string) {
    this.socket = path.join(dir, 'run', 'vstor.sock')
    this.dataDir = path.join(dir, 'data')
  }

  async start(tls: boolean): Promise<void> {
    const listen: string[] = []
    if (tls) {
      const ca = path.join(this.dir, 'ca')
      await initCa(ca)
      const ctl = (await issueCert(ca, 'benchctl', { sans: ['127.0.0.1'] })).dir
      this.clientTls = (await issueCert(ca, 'benchagent')).dir
      const port = await freePort()
      listen.push('--listen', `127.0.0.1:${port}`, '--tls-dir', ctl)
      this.tcp = { host: '127.0.0.1', port, tlsDir: this.clientTls }
    }
    const r = await run(process.execPath, [
      VSTOR_BIN,
      'controller',
      'start',
      '--socket',
      this.socket,
      '--data-dir',
      this.dataDir,
      ...listen,
    ])
    if (r.code !== 0) throw new Error(`controller start failed: ${r.stderr.trim()}`)
    this.cli = (await connectController({ socket: this.socket }, { role: 'cli', pid: process.pid })).conn
    this.pid = (await this.cli.call('status', {})).controller.pid
    const pool = path.join(this.dir, 'pool.img')
    fs.writeFileSync(pool, '')
    fs.truncateSync(pool, 1024 * MiB)
    await this.cli.call('device.add', { path: pool, name: 'pool' })
  }

  generation = async (): Promise<number> => (await this.cli.call('status', {})).controller.generation

  /** Every agent has the controller's table (acked its table.load) and counts as known. */
  async settle(agents: SimAgent[]): Promise<void> {
    const gen = await this.generation()
    const known = async (): Promise<boolean> => {
      const list = await this.cli.call('agent.list', {})
      return agents.every((a) => a.generation >= gen) && list.filter((x) => x.connected && x.generation >= gen).length >= agents.length
    }
    if (!(await waitFor(known, 30_000))) throw new Error(`${agents.length} agents did not all take the table`)
  }

  async stop(): Promise<void> {
    await this.cli?.call('controller.stop', {}).catch(() => undefined)
    this.cli?.close()
    if (this.pid && !(await waitFor(() => !pidAlive(this.pid), 10_000))) process.kill(this.pid, 'SIGKILL')
  }
}

async function withController<T>(tls: boolean, fn: (c: Ctl) => Promise<T>): Promise<T> {
  const c = new Ctl(await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-bench-remote-')))
  // interrupted (bench/run.ts exits on SIGINT after its own cleanup): the daemon must not outlive us
  const onExit = (): void => {
    if (c.pid && pidAlive(c.pid)) process.kill(c.pid, 'SIGKILL')
  }
  process.on('exit', onExit)
  try {
    await c.start(tls)
    return await fn(c)
  } finally {
    process.off('exit', onExit)
    await c.stop()
    await fs.promises.rm(c.dir, { recursive: true, force: true })
  }
}

/** One table change (extent.set flips no-write on the first unit) to 1, 10 and 100 agents on the socket. */
export function fanout(changes: number, sizes = [1, 10, 100]): Promise<FanoutPoint[]> {
  return withController(false, async (c) => {
    await c.cli.call('disk.create', { name: 'fan', size: 16 * MiB, thin: true })
    const agents: SimAgent[] = []
    const out: FanoutPoint[] = []
    try {
      for (const n of sizes) {
        while (agents.length < n) agents.push(await SimAgent.connect({ socket: c.socket }, `sim${agents.length}`))
        await c.settle(agents)
        const lastAck: number[] = []
        const spread: number[] = []
        for (let i = 0; i < changes + 5; i++) {
          const on: ['no-write'] | [] = i % 2 === 0 ? ['no-write'] : []
          const t0 = performance.now()
          await c.cli.call('extent.set', { name: 'fan', offset: 0, length: MiB, set: on, clear: on.length ? [] : ['no-write'] })
          if (i < 5) continue // warm-up
          const last = Math.max(...agents.map((a) => a.ackedAt))
          lastAck.push(last - t0)
          spread.push(last - Math.min(...agents.map((a) => a.gotAt)))
        }
        out.push({ agents: n, changes, lastAck: dist(lastAck), spread: dist(spread) })
      }
    } finally {
      for (const a of agents) a.conn.close()
    }
    return out
  })
}

/** First writes into fresh units of two thin disks, one agent on the socket and one over TLS, interleaved. */
export function faultRtt(count: number): Promise<{ unix: TransportFault; tls: TransportFault }> {
  return withController(true, async (c) => {
    const unix = await SimAgent.connect({ socket: c.socket }, 'unix-agent')
    const tls = await SimAgent.connect(c.tcp!, 'benchagent')
    try {
      await c.cli.call('disk.create', { name: 'fu', size: count * MiB, thin: true })
      await c.cli.call('disk.create', { name: 'ft', size: count * MiB, thin: true })
      await c.settle([unix, tls])
      const runs = [
        { a: unix, disk: 'fu', fault: [] as number[], request: [] as number[] },
        { a: tls, disk: 'ft', fault: [] as number[], request: [] as number[] },
      ]
      for (let i = 0; i < count; i++) {
        for (const r of i % 2 ? [...runs].reverse() : runs) {
          let t0 = performance.now()
          const reply = await r.a.conn.call(
            'fault',
            { disk: r.disk, kind: 'unallocated', offset: i * MiB, length: 4096, generation: r.a.generation },
            { timeoutMs: 30_000 },
          )
          r.fault.push(performance.now() - t0)
          if (reply.action !== 'retry') throw new Error(`fault on ${r.disk} unit ${i}: ${reply.action} (${reply.reason ?? ''})`)
          t0 = performance.now()
          await r.a.conn.call('agent.sync', { generation: r.a.generation })
          r.request.push(performance.now() - t0)
        }
      }
      const res = (r: (typeof runs)[0]): TransportFault => ({ faults: count, fault: dist(r.fault), request: dist(r.request) })
      return { unix: res(runs[0]!), tls: res(runs[1]!) }
    } finally {
      unix.conn.close()
      tls.conn.close()
    }
  })
}

export async function runRemote(quick: boolean): Promise<RemoteResult> {
  const fan = await fanout(quick ? 50 : 200)
  const faults = await faultRtt(quick ? 100 : 300)
  return { fanout: fan, faults }
}

if (require.main === module) {
  runRemote(process.argv.includes('--quick')).then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n' + remoteLines(r).join('\n') + '\n')
      process.exit(0)
    },
    (e: Error) => {
      process.stderr.write(`bench: remote: ${e.stack ?? e.message}\n`)
      process.exit(1)
    },
  )
}
