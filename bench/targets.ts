// The four fio targets: (a) raw file, (b) qemu-storage-daemon FUSE export of a raw file,
// (c) vstor image on a thick disk, (d) vstor image on a fresh thin disk.
//
// Invariants:
//   * every resource set up here registers its teardown with Cleanup before it can leak, and
//     Cleanup.run() never throws, so a failed or interrupted run leaves no mount or process behind;
//   * all backing files live in one temp dir on the same file system (os.tmpdir());
//   * the thin target is recreated before each write pass (beforeWrite), so its writes are first
//     writes; before a read pass it is filled if it was recreated since (reads must hit data).

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pidAlive } from '../src/daemon'
import { connect, type Connection } from '../src/protocol/connection'
import { prefill, run } from './fio'

export const ROOT = path.resolve(__dirname, '..', '..')
export const VSTOR_BIN = path.join(ROOT, 'bin', 'vstor')
const MiB = 2 ** 20

export type TargetKey = 'raw' | 'qsd' | 'thick' | 'thin'

export interface Target {
  key: TargetKey
  label: string
  file: string
  beforeRead(): Promise<void>
  beforeWrite(): Promise<void>
}

/** Teardown steps, run last-in first-out; each step's failure is logged, never thrown. */
export class Cleanup {
  private steps: { what: string; fn: () => Promise<void> | void }[] = []
  private running: Promise<void> | null = null
  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn })
  }
  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!
        try {
          await step.fn()
        } catch (err) {
          process.stderr.write(`bench: cleanup (${step.what}) failed: ${(err as Error).message}\n`)
        }
      }
    })()
    return this.running
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Poll until `pred` holds; false on timeout. */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await pred()) return true
    await sleep(stepMs)
  }
  return pred()
}

const sizeOf = async (file: string): Promise<number> => (await fs.promises.stat(file).catch(() => null))?.size ?? -1

/** Wait up to 15 s for a foreground child to exit, then SIGTERM it (then SIGKILL). */
async function waitExit(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  let gone = false
  child.on('exit', () => (gone = true))
  if (await waitFor(() => gone, 15_000)) return
  child.kill('SIGTERM')
  if (!(await waitFor(() => gone, 5_000))) child.kill('SIGKILL')
}

/** Unmount whatever FUSE mount is at `p` (qsd or vstor), ignoring "not mounted". */
export async function forceUnmount(p: string): Promise<void> {
  const mounts = await fs.promises.readFile('/proc/mounts', 'utf8')
  if (!mounts.split('\n').some((l) => l.split(' ')[1] === p)) return
  if ((await run('fusermount', ['-u', p])).code !== 0) await run('umount', ['-l', p])
}

const noop = async (): Promise<void> => {}
/** A target whose reads and writes need no preparation. */
const plain = (key: TargetKey, label: string, file: string): Target => ({ key, label, file, beforeRead: noop, beforeWrite: noop })

/** A sparse file of `size` bytes. */
async function sparse(file: string, size: number): Promise<void> {
  await fs.promises.writeFile(file, '')
  await fs.promises.truncate(file, size)
}

export async function setupRaw(dir: string, size: number): Promise<Target> {
  const file = path.join(dir, 'raw.img')
  await sparse(file, size)
  await prefill(file, size)
  return plain('raw', 'raw file', file)
}

export async function setupQsd(dir: string, size: number, cleanup: Cleanup): Promise<Target> {
  const backing = path.join(dir, 'qsd-backing.img')
  const file = path.join(dir, 'qsd.img')
  await sparse(backing, size)
  await fs.promises.writeFile(file, '')
  const log = fs.openSync(path.join(dir, 'qsd.log'), 'a')
  const child = spawn(
    'qemu-storage-daemon',
    ['--blockdev', `driver=file,node-name=f,filename=${backing}`, '--export', `type=fuse,id=e,node-name=f,mountpoint=${file},writable=on`],
    { stdio: ['ignore', log, log] },
  )
  fs.closeSync(log)
  let exited = false
  child.on('exit', () => (exited = true))
  cleanup.add('qemu-storage-daemon', async () => {
    if (!exited) child.kill('SIGTERM')
    if (!(await waitFor(() => exited, 10_000))) child.kill('SIGKILL')
    await forceUnmount(file)
  })
  const up = await waitFor(async () => exited || (await sizeOf(file)) === size, 15_000)
  if (!up || exited) throw new Error(`qemu-storage-daemon did not export ${file}; see ${dir}/qsd.log`)
  await prefill(file, size)
  return plain('qsd', 'qsd 7.2 FUSE', file)
}

export interface VstorOptions {
  dir: string
  size: number
  /** Extra room in the pool for the meta benchmarks' own thin disk. */
  spare: number
  /** Run the controller and the agent in the foreground under `node --cpu-prof`, profiles written to <dir>/controller and <dir>/agent. */
  profileDir?: string
}

/** A controller + agent started through the CLI, with a thick and a thin disk. */
export class Vstor {
  readonly socket: string
  readonly dataDir: string
  readonly mnt: string
  private agent: ChildProcess | null = null
  private controller: ChildProcess | null = null
  private conn: Connection | null = null
  private thinFresh = true

  constructor(
    private opts: VstorOptions,
    private cleanup: Cleanup,
  ) {
    this.socket = path.join(opts.dir, 'vstor', 'run', 'vstor.sock')
    this.dataDir = path.join(opts.dir, 'vstor', 'data')
    this.mnt = path.join(opts.dir, 'vstor', 'mnt')
  }

  image(disk: string): string {
    return path.join(this.mnt, `${disk}.img`)
  }

  /** Run `vstor ARGS --socket S --data-dir D`; throws with stderr on a non-zero exit. */
  async cli(args: string[], timeoutMs = 60_000): Promise<string> {
    const r = await run(process.execPath, [VSTOR_BIN, ...args, '--socket', this.socket, '--data-dir', this.dataDir], timeoutMs)
    if (r.code !== 0) throw new Error(`vstor ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    return r.stdout
  }

  async start(): Promise<void> {
    const { dir, size, spare } = this.opts
    await fs.promises.mkdir(this.mnt, { recursive: true })
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
    this.cleanup.add('vstor agent', () => this.unmount())
    await this.mount()
    await prefill(this.image('thick'), size)
  }

  private async mount(): Promise<void> {
    const { profileDir, size } = this.opts
    if (!profileDir) await this.cli(['mount', this.mnt])
    else this.agent = this.profiled('agent', ['mount', this.mnt, '--foreground'])
    if (!(await waitFor(async () => (await sizeOf(this.image('thick'))) === size, 20_000))) {
      throw new Error(`vstor mount did not show ${this.image('thick')} of ${size} bytes`)
    }
  }

  /** `node --cpu-prof bin/vstor ARGS` in the foreground; it writes its profile when it exits normally. */
  private profiled(name: string, args: string[]): ChildProcess {
    const log = fs.openSync(path.join(this.opts.dir, `${name}-fg.log`), 'a')
    const prof = [`--cpu-prof`, `--cpu-prof-dir=${path.join(this.opts.profileDir!, name)}`]
    const child = spawn(process.execPath, [...prof, VSTOR_BIN, ...args, '--socket', this.socket, '--data-dir', this.dataDir], {
      stdio: ['ignore', log, log],
    })
    fs.closeSync(log)
    return child
  }

  private async unmount(): Promise<void> {
    try {
      await this.cli(['unmount', this.mnt])
    } finally {
      await waitExit(this.agent)
      await forceUnmount(this.mnt)
      await this.killAgents()
    }
  }

  /** Any agent pid file left behind means the agent did not exit: kill it. */
  private async killAgents(): Promise<void> {
    const dir = path.join(path.dirname(this.socket), 'agents')
    for (const f of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue
      const info = JSON.parse(await fs.promises.readFile(path.join(dir, f), 'utf8').catch(() => '{}')) as { pid?: number }
      if (info.pid && pidAlive(info.pid)) process.kill(info.pid, 'SIGKILL')
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

  /** Delete and create the thin disk again (same requests as `disk delete --force` / `disk create --thin`), so every unit is Zero. */
  async recreate(disk: string, size: number): Promise<void> {
    const img = this.image(disk)
    const conn = await this.client()
    if ((await sizeOf(img)) >= 0) {
      await conn.call('disk.delete', { name: disk, force: true })
      await waitFor(async () => (await sizeOf(img)) < 0, 5_000)
    }
    await conn.call('disk.create', { name: disk, size, thin: true })
    if (!(await waitFor(async () => (await sizeOf(img)) === size, 10_000))) throw new Error(`${img} did not appear after disk create`)
  }

  async deleteDisk(disk: string): Promise<void> {
    await (await this.client()).call('disk.delete', { name: disk, force: true })
  }

  targets(): Target[] {
    const { size } = this.opts
    const thick: Target = {
      key: 'thick',
      label: 'vstor thick',
      file: this.image('thick'),
      beforeRead: async () => {},
      beforeWrite: async () => {},
    }
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
    return [thick, thin]
  }
}
