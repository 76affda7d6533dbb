// The vstor side of the bench: a controller and up to three agents started through the CLI, all on
// one controller (same socket and data dir; an agent is known by host:mountpoint), a thick and a
// thin disk. Each agent is one front-end target for the same thick disk:
//   thick  vstor/mnt     the default front end (libfuse3) with the native mapped path;
//   js     vstor/mnt-js  --fuse libfuse3 with VSTOR_NATIVE_MAP=0 (every request through JS);
//   fn     vstor/mnt-fn  --fuse fuse-native (libfuse 2.9);
//   serial vstor/mnt-serial thick with VSTOR_PARALLEL_DIRECT_WRITES=0 (bench/pdw.ts only).
//
// Invariants:
//   * teardown of every agent and of the controller is registered with Cleanup before they start;
//     an agent is unmounted by `vstor unmount`, then the mount is forced off and any agent whose
//     pid file is left is killed;
//   * the thick agent never inherits VSTOR_NATIVE_MAP (it is the native-path target);
//   * the thin target is recreated before each write pass (beforeWrite), so its writes are first
//     writes; before a read pass it is filled if it was recreated since (reads must hit data).

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pidAlive } from '../src/daemon'
import { connect, type Connection } from '../src/protocol/connection'
import { prefill, run } from './fio'
import { forceUnmount, sizeOf, sparse, VSTOR_BIN, waitExit, waitFor, type Cleanup, type Target } from './targets'

const MiB = 2 ** 20

export type FrontKey = 'thick' | 'js' | 'fn' | 'serial'
interface FrontSpec {
  /** Profile dir and foreground log name. */
  name: string
  dir: string
  flags: string[]
  env: Record<string, string | undefined>
  label: string
}
export const FRONTS: Record<FrontKey, FrontSpec> = {
  fn: { name: 'agent-fn', dir: 'mnt-fn', flags: ['--fuse', 'fuse-native'], env: {}, label: 'vstor thick, fuse-native (libfuse 2)' },
  js: {
    name: 'agent-js',
    dir: 'mnt-js',
    flags: ['--fuse', 'libfuse3'],
    env: { VSTOR_NATIVE_MAP: '0' },
    label: 'vstor thick, libfuse3 all JS',
  },
  thick: { name: 'agent', dir: 'mnt', flags: [], env: {}, label: 'vstor thick, libfuse3 + native map' },
  // bench/pdw.ts only: the thick target without FOPEN_PARALLEL_DIRECT_WRITES
  serial: {
    name: 'agent-serial',
    dir: 'mnt-serial',
    flags: ['--fuse', 'libfuse3'],
    env: { VSTOR_PARALLEL_DIRECT_WRITES: '0' },
    label: 'vstor thick, libfuse3 + native map, direct writes serialized',
  },
}

export interface VstorOptions {
  dir: string
  size: number
  /** Extra room in the pool for the meta benchmarks' own thin disk. */
  spare: number
  /** Run the controller and the agents in the foreground under `node --cpu-prof`, profiles written to <dir>/controller and <dir>/agent… */
  profileDir?: string
}

interface Agent {
  mnt: string
  child: ChildProcess | null // the foreground agent in profile mode
  up: boolean // its image of the thick disk showed up
}

/** A controller + agents started through the CLI, with a thick and a thin disk. */
export class Vstor {
  readonly socket: string
  readonly dataDir: string
  readonly mnt: string
  private agents = new Map<FrontKey, Agent>()
  private controller: ChildProcess | null = null
  private conn: Connection | null = null
  private thinFresh = true

  constructor(
    private opts: VstorOptions,
    private cleanup: Cleanup,
  ) {
    this.socket = path.join(opts.dir, 'vstor', 'run', 'vstor.sock')
    this.dataDir = path.join(opts.dir, 'vstor', 'data')
    this.mnt = this.mountpoint('thick')
  }

  mountpoint(key: FrontKey): string {
    return path.join(this.opts.dir, 'vstor', FRONTS[key].dir)
  }

  image(disk: string, key: FrontKey = 'thick'): string {
    return path.join(this.mountpoint(key), `${disk}.img`)
  }

  /** Run `vstor ARGS --socket S --data-dir D`; throws with stderr on a non-zero exit. */
  async cli(args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<string> {
    const r = await run(process.execPath, [VSTOR_BIN, ...args, '--socket', this.socket, '--data-dir', this.dataDir], timeoutMs, env)
    if (r.code !== 0) throw new Error(`vstor ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    return r.stdout
  }

  async start(): Promise<void> {
    const { dir, size, spare } = this.opts
    await fs.promises.mkdir(this.dataDir, { recursive: true })
    const device = path.join(dir, 'vstor', 'dev0.img')
    await sparse(device, 2 * size + spare + 64 * MiB)
    this.cleanup.add('vstor controller', () => this.stopController())
    if (!this.opts.profileDir) await this.cli(['controller', 'start'])
    else {
      this.controller = this.profiled('controller', ['controller', 'start', '--foreground'])
      const up = async (): Promise<boolean> => {
        const c = await connect(this.socket, { role: 'cli', pid: process.pid }).catch(() => null)
        c?.conn.close()
        return c !== null
      }
      if (!(await waitFor(up, 20_000, 200)))
        throw new Error(`controller did not answer on ${this.socket}; see ${this.opts.dir}/controller-fg.log`)
    }
    await this.cli(['device', 'add', device, '--name', 'dev0'])
    await this.cli(['disk', 'create', 'thick', '--size', String(size)])
    await this.cli(['disk', 'create', 'thin', '--size', String(size), '--thin'])
    this.cleanup.add('vstor agents', () => this.unmountAll())
    await this.mount('thick')
    await prefill(this.image('thick'), size)
  }

  /** Start the agent of a front-end target (thick is started by start()). */
  async mount(key: FrontKey): Promise<void> {
    const { profileDir, size } = this.opts
    const spec = FRONTS[key]
    const mnt = this.mountpoint(key)
    await fs.promises.mkdir(mnt, { recursive: true })
    const env = { ...process.env, ...spec.env }
    if (key === 'thick') delete env.VSTOR_NATIVE_MAP
    if (key !== 'serial') delete env.VSTOR_PARALLEL_DIRECT_WRITES
    const agent: Agent = { mnt, child: null, up: false }
    this.agents.set(key, agent)
    if (!profileDir) await this.cli(['mount', mnt, ...spec.flags], 60_000, env)
    else agent.child = this.profiled(spec.name, ['mount', mnt, '--foreground', ...spec.flags], env)
    if (!(await waitFor(async () => (await sizeOf(this.image('thick', key))) === size, 20_000))) {
      throw new Error(`vstor mount ${spec.flags.join(' ')} did not show ${this.image('thick', key)} of ${size} bytes`)
    }
    agent.up = true
  }

  /** `node --cpu-prof bin/vstor ARGS` in the foreground; it writes its profile when it exits normally. */
  private profiled(name: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const log = fs.openSync(path.join(this.opts.dir, `${name}-fg.log`), 'a')
    const prof = [`--cpu-prof`, `--cpu-prof-dir=${path.join(this.opts.profileDir!, name)}`]
    const child = spawn(process.execPath, [...prof, VSTOR_BIN, ...args, '--socket', this.socket, '--data-dir', this.dataDir], {
      stdio: ['ignore', log, log],
      env,
    })
    fs.closeSync(log)
    return child
  }

  private async unmount(key: FrontKey): Promise<void> {
    const agent = this.agents.get(key)
    if (!agent) return
    this.agents.delete(key)
    try {
      await this.cli(['unmount', agent.mnt])
    } finally {
      await waitExit(agent.child)
      await forceUnmount(agent.mnt)
    }
  }

  /** Stop the agents of the other front ends (js, fn), so later benchmarks see one agent. */
  async unmountFronts(): Promise<void> {
    for (const key of ['fn', 'js'] as const) await this.unmount(key)
  }

  private async unmountAll(): Promise<void> {
    for (const key of [...this.agents.keys()].reverse()) {
      await this.unmount(key).catch((err: Error) => process.stderr.write(`bench: unmount ${key}: ${err.message}\n`))
    }
    await this.killAgents()
  }

  /** Any agent pid file left behind means the agent did not exit: kill it. */
  private async killAgents(): Promise<void> {
    const dir = path.join(path.dirname(this.socket), 'agents')
    for (const f of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue
      const info = JSON.parse(await fs.promises.readFile(path.join(dir, f), 'utf8').catch(() => '{}')) as {
        pid?: number
        mountpoint?: string
      }
      if (info.pid && pidAlive(info.pid)) process.kill(info.pid, 'SIGKILL')
      if (info.mountpoint) await forceUnmount(info.mountpoint)
    }
  }

  private async stopController(): Promise<void> {
    const status = await this.cli(['status', '--json']).catch(() => '')
    const pid = status ? (JSON.parse(status) as { controller?: { pid?: number } }).controller?.pid : undefined
    await this.cli(['controller', 'stop']).catch((err: Error) => process.stderr.write(`bench: ${err.message}\n`))
    await waitExit(this.controller)
    if (pid && !(await waitFor(() => !pidAlive(pid), 10_000))) process.kill(pid, 'SIGKILL')
  }

  /** A CLI-role connection to the controller, kept open: a `vstor` process per call costs ~1 s of oclif start-up. */
  async client(): Promise<Connection> {
    if (this.conn && !this.conn.closed) return this.conn
    const conn = (await connect(this.socket, { role: 'cli', pid: process.pid })).conn
    this.conn = conn
    this.cleanup.add('controller connection', () => conn.close())
    return conn
  }

  /**
   * Delete and create the thin disk again (same requests as `disk delete --force` / `disk create --thin`), so every unit is Zero;
   * then wait until the scrubber has zeroed the old disk's space, so the pass measures first writes, not the scrub beside them.
   */
  async recreate(disk: string, size: number): Promise<void> {
    const img = this.image(disk)
    const conn = await this.client()
    if ((await sizeOf(img)) >= 0) {
      await conn.call('disk.delete', { name: disk, force: true })
      await waitFor(async () => (await sizeOf(img)) < 0, 5_000)
    }
    await conn.call('disk.create', { name: disk, size, thin: true })
    if (!(await waitFor(async () => (await sizeOf(img)) === size, 10_000))) throw new Error(`${img} did not appear after disk create`)
    const scrubbed = async (): Promise<boolean> =>
      (await conn.call('device.list', {})).every((d) => d.scrubbing === 0 && d.quarantined === 0)
    if (!(await waitFor(scrubbed, 120_000, 100))) throw new Error('the scrubber did not finish within 120 s after disk delete')
  }

  async deleteDisk(disk: string): Promise<void> {
    await (await this.client()).call('disk.delete', { name: disk, force: true })
  }

  /** The thick disk through each mounted front end (fn, js, thick), then the thin disk. */
  targets(): Target[] {
    const { size } = this.opts
    const noop = async (): Promise<void> => {}
    const fronts = (['fn', 'js', 'thick'] as const).filter((k) => this.agents.get(k)?.up)
    const thin: Target = {
      key: 'thin',
      label: 'vstor thin (first writes)',
      file: this.image('thin'),
      beforeRead: async () => {
        if (!this.thinFresh) return
        await prefill(this.image('thin'), size)
        this.thinFresh = false
      },
      beforeWrite: async () => {
        await this.recreate('thin', size)
        this.thinFresh = true
      },
    }
    return [
      ...fronts.map((key) => ({ key, label: FRONTS[key].label, file: this.image('thick', key), beforeRead: noop, beforeWrite: noop })),
      ...(this.agents.get('thick')?.up ? [thin] : []),
    ]
  }
}
