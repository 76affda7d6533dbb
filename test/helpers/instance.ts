// A throw-away vstor instance for one end-to-end test: its own temp dir,
// socket, data dir and mountpoint, driven through the real CLI (bin/vstor).
//
// Invariants: everything the instance starts or attaches (controller, agents,
// FUSE mount, loop devices, file-system mounts, background children) is torn
// down in t.after, even when the test failed; the temp dir is removed only
// once nothing is mounted under it, so a stuck mount never gets rm -rf'd
// through.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import type { DeviceInfo, DiskInfo, DiskMap, Status } from '../../src/protocol/messages'
import {
  forceUnmount,
  isMounted,
  killIfOurs,
  mountPoints,
  pidDead,
  qemuIo,
  sh,
  spawnBg,
  type Background,
  type ShOptions,
  type ShResult,
} from './proc'

export { qemuIo, qemuIoOk, sh, shOk, ioError, ioFailed, spawnBg, sleep, waitFor, isMounted, pidDead } from './proc'
export type { ShResult } from './proc'

export const MiB = 2 ** 20

export interface RunOptions {
  /** Append --json and parse the output (stdout, or stderr for an error). */
  json?: boolean
  /** The command must fail (non-zero exit); without it a failure throws. */
  expectFail?: boolean
  timeoutMs?: number
}
export interface RunResult<T = unknown> extends ShResult {
  json: T
}

export interface Instance {
  dir: string
  socket: string
  dataDir: string
  mnt: string
  /** Where pid/log files of agents go: <dirname(socket)>/agents. */
  agentsDir: string
  run<T = unknown>(args: string[], opts?: RunOptions): Promise<RunResult<T>>
  startController(extra?: string[]): Promise<RunResult>
  stopController(): Promise<RunResult>
  /** SIGKILL the controller (pid from `status --json`); returns the pid. */
  killController(): Promise<number>
  /** A sparse file of size bytes (optionally filled with one byte value) added as a device. Returns its path. */
  addDevice(size: number, name?: string, opts?: { fill?: number }): Promise<string>
  /** A sparse file in the temp dir (not added). */
  makeFile(size: number, name: string, opts?: { fill?: number }): string
  mount(extra?: string[]): Promise<RunResult>
  unmount(): Promise<RunResult>
  image(name: string): string
  status(): Promise<Status>
  diskMap(name: string): Promise<DiskMap>
  diskList(): Promise<DiskInfo[]>
  deviceList(): Promise<DeviceInfo[]>
  /** A loop device over file (read-only with readOnly: losetup -r), detached at teardown. */
  losetupAttach(file: string, opts?: { readOnly?: boolean }): Promise<string>
  losetupDetach(dev: string): Promise<void>
  /** Track a file-system mount made by the test (unmounted first at teardown). */
  trackMount(dir: string): void
  /** Start a background child that teardown kills if it is still running. */
  background(cmd: string, args: string[], opts?: ShOptions): Background
  /** Run at teardown after vstor is stopped (last registered runs first). */
  onCleanup(fn: () => Promise<void> | void): void
  /** Run first at teardown, before anything is stopped (SIGCONT a stopped agent, unmount a second mount). */
  onTeardown(fn: () => Promise<void> | void): void
  sh(cmd: string, args: string[], opts?: ShOptions): Promise<ShResult>
  qemuIo(image: string, cmds: string[], opts?: ShOptions): Promise<ShResult>
}

/** Thrown after t.skip() so the test body stops; node:test reports the test as skipped. */
export class SkipTest extends Error {}

/** Why end-to-end tests cannot run here, or null. Under CI a missing requirement is an error. */
export function missingRequirement(): string | null {
  let why: string | null = null
  if (process.getuid?.() !== 0) why = 'needs root (FUSE mounts, losetup)'
  else if (!fs.existsSync('/dev/fuse')) why = 'needs /dev/fuse'
  if (why && process.env.CI) throw new Error(`end-to-end test ${why}; under CI this is a failure`)
  return why
}

/** The repo root holding bin/vstor: $VSTOR_ROOT, else up from this file, else the cwd. */
export function repoRoot(): string {
  const env = process.env.VSTOR_ROOT
  if (env) return path.resolve(env)
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'bin', 'vstor')) && fs.existsSync(path.join(d, 'package.json'))) return d
  }
  return process.cwd()
}

export async function vstorInstance(t: TestContext, opts: { prefix?: string } = {}): Promise<Instance> {
  const why = missingRequirement()
  if (why) {
    t.skip(why)
    throw new SkipTest(why)
  }
  const root = repoRoot()
  const bin = path.join(root, 'bin', 'vstor')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? 'vstor-e2e-'))
  const socket = path.join(dir, 'run', 'vstor.sock')
  const dataDir = path.join(dir, 'data')
  const mnt = path.join(dir, 'mnt')
  const agentsDir = path.join(dir, 'run', 'agents')
  fs.mkdirSync(mnt, { recursive: true })

  const pids = new Set<number>()
  const loops: string[] = []
  const fsMounts: string[] = []
  const children: Background[] = []
  const cleanups: (() => Promise<void> | void)[] = []
  const firsts: (() => Promise<void> | void)[] = []
  let fileNo = 0

  const run = async <T = unknown>(args: string[], o: RunOptions = {}): Promise<RunResult<T>> => {
    const full = [bin, ...args, ...(o.json ? ['--json'] : []), '--socket', socket, '--data-dir', dataDir]
    const r = await sh(process.execPath, full, { timeoutMs: o.timeoutMs ?? 120_000, cwd: root })
    const text = `vstor ${args.join(' ')}${o.json ? ' --json' : ''} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`
    if (o.expectFail && r.code === 0) throw new Error(`expected failure: ${text}`)
    if (!o.expectFail && r.code !== 0) throw new Error(text)
    let json: unknown = undefined
    if (o.json) {
      for (const s of [r.stdout, r.stderr]) {
        if (json !== undefined || !s.trim()) continue
        try {
          json = JSON.parse(s)
        } catch {
          if (!o.expectFail) throw new Error(`not JSON: ${text}`)
        }
      }
    }
    return { ...r, json: json as T }
  }

  const status = async (): Promise<Status> => (await run<Status>(['status'], { json: true })).json
  const notePids = async (): Promise<void> => {
    try {
      const s = await status()
      pids.add(s.controller.pid)
      for (const a of s.agents) if (a.pid) pids.add(a.pid)
    } catch {
      // controller down: nothing to note
    }
  }

  const makeFile = (size: number, name: string, o: { fill?: number } = {}): string => {
    const file = path.join(dir, name)
    const fd = fs.openSync(file, 'w')
    try {
      fs.ftruncateSync(fd, size)
      if (o.fill !== undefined) {
        const chunk = Buffer.alloc(Math.min(size, 4 * MiB), o.fill)
        for (let off = 0; off < size; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off)
      }
    } finally {
      fs.closeSync(fd)
    }
    return file
  }

  const inst: Instance = {
    dir,
    socket,
    dataDir,
    mnt,
    agentsDir,
    run,
    async startController(extra = []) {
      const r = await run(['controller', 'start', ...extra])
      await notePids()
      return r
    },
    stopController: () => run(['controller', 'stop']),
    async killController() {
      const pid = (await status()).controller.pid
      process.kill(pid, 'SIGKILL')
      for (let i = 0; i < 200 && !pidDead(pid); i++) await new Promise((r) => setTimeout(r, 50))
      return pid
    },
    async addDevice(size, name, o = {}) {
      const devName = name ?? `dev${fileNo}`
      const file = makeFile(size, `device-${fileNo++}-${devName}.bin`, o)
      await run(['device', 'add', file, '--name', devName])
      return file
    },
    makeFile,
    async mount(extra = []) {
      // a dead mount (a killed agent) answers ENOTCONN here: vstor mount clears it itself
      try {
        fs.mkdirSync(mnt, { recursive: true })
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') throw e
      }
      const r = await run(['mount', mnt, ...extra])
      await notePids()
      return r
    },
    unmount: () => run(['unmount', mnt]),
    image: (name) => path.join(mnt, `${name}.img`),
    status,
    diskMap: async (name) => (await run<DiskMap>(['disk', 'map', name], { json: true })).json,
    diskList: async () => (await run<DiskInfo[]>(['disk', 'list'], { json: true })).json,
    deviceList: async () => (await run<DeviceInfo[]>(['device', 'list'], { json: true })).json,
    async losetupAttach(file, o = {}) {
      const r = await sh('losetup', [...(o.readOnly ? ['-r'] : []), '--find', '--show', file], { timeoutMs: 30_000 })
      const dev = r.stdout.trim()
      if (r.code !== 0 || !dev.startsWith('/dev/loop')) throw new Error(`losetup --find --show ${file}: ${r.stderr}`)
      loops.push(dev)
      return dev
    },
    async losetupDetach(dev) {
      const r = await sh('losetup', ['-d', dev], { timeoutMs: 30_000 })
      if (r.code !== 0) throw new Error(`losetup -d ${dev}: ${r.stderr}`)
      loops.splice(loops.indexOf(dev), 1)
    },
    trackMount: (d) => void fsMounts.push(d),
    background(cmd, args, o = {}) {
      const b = spawnBg(cmd, args, { timeoutMs: 0, ...o })
      children.push(b)
      return b
    },
    onCleanup: (fn) => void cleanups.push(fn),
    onTeardown: (fn) => void firsts.push(fn),
    sh,
    qemuIo,
  }

  t.after(async () => {
    const problems: string[] = []
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn()
      } catch (e) {
        problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    for (const fn of firsts.reverse()) await step('teardown', async () => fn())
    await notePids()
    // File systems on loop devices over our images go first, then the loops.
    for (const m of fsMounts.reverse()) await step(`umount ${m}`, () => forceUnmount(m))
    for (const l of [...loops].reverse()) await step(`losetup -d ${l}`, () => sh('losetup', ['-d', l], { timeoutMs: 30_000 }))
    for (const b of children) if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL')
    if (isMounted(mnt))
      await step('vstor unmount', () =>
        sh(process.execPath, [bin, 'unmount', mnt, '--socket', socket, '--data-dir', dataDir], { timeoutMs: 30_000 }),
      )
    if (isMounted(mnt)) await forceUnmount(mnt)
    await step('controller stop', () =>
      sh(process.execPath, [bin, 'controller', 'stop', '--socket', socket, '--data-dir', dataDir], { timeoutMs: 30_000 }),
    )
    for (const pid of readAgentPids(agentsDir)) pids.add(pid)
    for (const pid of pids) killIfOurs(pid, dir)
    for (const fn of cleanups.reverse()) await step('cleanup', async () => fn())
    const left = mountPoints().filter((m) => m === dir || m.startsWith(dir + '/'))
    for (const m of left.reverse()) await forceUnmount(m)
    if (mountPoints().some((m) => m.startsWith(dir + '/'))) problems.push(`mounts left under ${dir}; not removing it`)
    else fs.rmSync(dir, { recursive: true, force: true })
    if (problems.length) t.diagnostic(`teardown: ${problems.join('; ')}`)
  })
  return inst
}

function readAgentPids(agentsDir: string): number[] {
  try {
    return fs
      .readdirSync(agentsDir)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(fs.readFileSync(path.join(agentsDir, f), 'utf8').trim()))
      .filter((n) => Number.isInteger(n) && n > 1)
  } catch {
    return []
  }
}

/** Read len bytes at an absolute offset of a file (a device's backing file). */
export function readAt(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(len)
    const n = fs.readSync(fd, buf, 0, len, offset)
    return buf.subarray(0, n)
  } finally {
    fs.closeSync(fd)
  }
}
