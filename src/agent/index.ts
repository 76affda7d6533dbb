// Entry points for `vstor mount` / `vstor unmount`: run the agent in the
// foreground, start it detached, or stop the agent serving a mountpoint.
//
// Invariants:
//   * signalReady() only once every NAME.img is visible through the mount
//     (checked with async fs.stat: a sync call would deadlock the FUSE loop);
//   * the pid file <dirname(socket)>/agents/<encoded mountpoint>.json exists
//     while the agent serves the mountpoint and is removed when it stops;
//   * on stop (SIGTERM, SIGINT, vstor unmount): requests in flight are answered, the mount goes
//     away, then devices are fdatasync'ed and closed before the process exits.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pidRunning as running, signalFailed, signalReady, spawnDetached } from '../daemon'
import { Hurry } from '../hurry'
import { raiseThisThread, realtimeSwitch } from '../priority'
import { VstorError, toVstorError } from '../errors'
import { describeAddress, formatHostPort, type TcpAddress } from '../protocol/address'
import { makeOps } from './fuse'
import { Fuse3 } from './frontend/fuse3'
import { makeFrontend, pickFrontend, type FrontendName } from './frontend/index'
import { NativeMap } from './frontend/native-map'
import { Link } from './link'
import { fuseUnmount, isMounted, mountInfo } from './mounts'
import { AgentState } from './state'
import { DiskIO } from './io'
import type { IoMode } from './store'

export interface AgentOptions {
  mountpoint: string
  /** The controller's socket; also where pid and log files go (<dirname>/agents). */
  socket: string
  /** Reach the controller over TCP with mutual TLS instead of the socket. */
  controller?: TcpAddress
  agentId?: string
  faultTimeoutMs?: number /* default 60_000 */
  /** Device I/O mode (default sync): see src/device. */
  io?: IoMode
  /** Globs scanned for device labels when a device is not at the controller's hint path. */
  scan?: string[]
  /** Owner, group and mode of the images (default root:root 0600). */
  uid?: number
  gid?: number
  mode?: number
  /** FUSE front end (default libfuse3 when built, else fuse-native; see frontend/index.ts). */
  fuse?: FrontendName
}

export const DEFAULT_SCAN = ['/dev/disk/by-id/*']

interface PidFile {
  pid: number
  mountpoint: string
  socket: string
  agentId: string
  startedAt: string
}

export function agentsDir(socket: string): string {
  return path.join(path.dirname(path.resolve(socket)), 'agents')
}
export function pidFilePath(mountpoint: string, socket: string): string {
  return path.join(agentsDir(socket), `${encodeURIComponent(path.resolve(mountpoint))}.json`)
}
export function logFilePath(mountpoint: string, socket: string): string {
  return path.join(agentsDir(socket), `${encodeURIComponent(path.resolve(mountpoint))}.log`)
}

const log = (msg: string): void => console.log(`${new Date().toISOString()} ${msg}`)

/** Foreground agent: connect, load, mount, serve until SIGTERM/SIGINT or unmount. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  try {
    await serve(opts)
  } catch (e) {
    const err = toVstorError(e)
    signalFailed(err.message)
    throw err
  }
}

async function serve(opts: AgentOptions): Promise<void> {
  const mnt = path.resolve(opts.mountpoint)
  const socket = path.resolve(opts.socket)
  const agentId = opts.agentId ?? `${os.hostname()}:${mnt}`
  const frontend = pickFrontend(opts.fuse)
  await prepareMountpoint(mnt)
  const link = new Link({
    socket,
    controller: opts.controller,
    agentId,
    mountpoint: mnt,
    faultTimeoutMs: opts.faultTimeoutMs ?? 60_000,
    frontend,
    served: (): number => DiskIO.served + native.served(),
    written: (): number | undefined => {
      const n = native.written()
      return n === null ? undefined : DiskIO.written + n
    },
  })
  const state = new AgentState({
    fault: (f) => link.fault(f),
    metaSync: () => link.metaSync(),
    discard: (p) => link.discard(p),
    online: () => link.connected,
    log,
    io: opts.io ?? 'sync',
    scan: opts.scan ?? DEFAULT_SCAN,
    onMissing: (uuids) => link.setMissing(uuids),
    // on another host than the controller, devices are shared between hosts' page caches
    coherent: opts.controller !== undefined,
    hurry: new Hurry(realtimeSwitch(log, 'thread')),
  })
  // libfuse3 serves plainly mapped extents in its worker threads (VSTOR_NATIVE_MAP=0: everything through JS).
  const native = new NativeMap(state, frontend === 'libfuse3' && process.env.VSTOR_NATIVE_MAP !== '0')
  state.listener = native
  link.on('failed', (what: string) => log(what))
  link.on('disconnected', () => log('lost the controller; serving mapped I/O, reconnecting'))
  const where = describeAddress(opts.controller ?? { socket })
  link.on('connected', () => log(`connected to the controller at ${where} (generation ${state.generation})`))
  try {
    await link.start(state)
  } catch (e) {
    link.stop()
    throw e
  }
  const perms = { uid: opts.uid ?? 0, gid: opts.gid ?? 0, mode: opts.mode ?? 0o600 }
  // auto_unmount: fuse-native's fusermount cleans up after a crash; Fuse3 drops it (no fusermount3),
  // prepareMountpoint clears a dead mount on the next start either way.
  const handles = {
    onOpenChange: (d: string[]) => link.setOpen(d),
    onOpen: (fd: number, d: DiskIO) => native.bind(fd, d),
    onRelease: (fd: number) => native.unbind(fd),
    ...perms,
  }
  const { fuse } = makeFrontend(frontend, mnt, makeOps(state, handles), ['auto_unmount', 'default_permissions'])
  try {
    await new Promise<void>((resolve, reject) => {
      fuse.mount((err) => (err ? reject(err) : resolve()))
      if (fuse instanceof Fuse3) native.attach(fuse) // the session exists once mount() returned
    })
  } catch (e) {
    link.stop()
    await state.closeAll()
    const hint = 'needs root (or fuse permissions), /dev/fuse and fusermount'
    throw new VstorError('MOUNT_FAILED', `cannot mount ${mnt}: ${(e as Error).message} (${hint})`)
  }
  const pidFile = pidFilePath(mnt, socket)
  let stopping: Promise<void> | null = null
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      log(`stopping: ${why}`)
      const st = native.stats()
      if (st) log(`native mapped path: ${st.reads} reads, ${st.writes} writes, ${st.toJs} to JS, ${st.queued} queued, ${st.errors} errors`)
      // The front end answers the requests in flight first (drain), then unmounts; what they wrote is synced after.
      if (await isMounted(mnt)) {
        await new Promise<void>((resolve) => fuse.unmount(() => resolve()))
        if (await isMounted(mnt)) await fuseUnmount(mnt, true).catch(() => {})
      }
      await state.syncAll()
      // unmounted and every device closed (late requests through a lazily detached fd fail):
      // nothing of ours can write any more, so the controller may drop this agent
      await state.closeAll()
      await link.bye()
      await fs.promises.rm(pidFile, { force: true })
    })())
  try {
    for (const name of state.disks.keys()) await fs.promises.stat(path.join(mnt, `${name}.img`))
    await fs.promises.mkdir(path.dirname(pidFile), { recursive: true, mode: 0o700 })
    const info: PidFile = { pid: process.pid, mountpoint: mnt, socket, agentId, startedAt: new Date().toISOString() }
    await fs.promises.writeFile(pidFile, JSON.stringify(info) + '\n', { mode: 0o600 })
  } catch (e) {
    await stop('start failed')
    throw new VstorError('MOUNT_FAILED', `mounted ${mnt} but the images are not visible: ${(e as Error).message}`)
  }
  const nice = raiseThisThread(log) // the front end's threads exist now: they keep their nice (see priority.ts)
  log(`serving ${state.disks.size} disk(s) at ${mnt} (FUSE front end: ${frontend}; main thread at nice ${nice})`)
  signalReady()
  await new Promise<void>((resolve) => {
    const finish = (why: string): void => {
      clearInterval(poll)
      process.off('SIGTERM', term)
      process.off('SIGINT', int)
      void stop(why).then(resolve, resolve)
    }
    const term = (): void => finish('SIGTERM')
    const int = (): void => finish('SIGINT')
    process.on('SIGTERM', term)
    process.on('SIGINT', int)
    // Someone ran fusermount -u: notice it and stop too (off the I/O path, once a second).
    const poll = setInterval(() => void isMounted(mnt).then((m) => m || finish('unmounted')), 1000)
  })
  log('stopped')
}

/** False only for a dead FUSE mount (its agent is gone: ENOTCONN, or ECONNABORTED once aborted through sysfs). */
const answers = (mnt: string): Promise<boolean> =>
  fs.promises.stat(mnt).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== 'ENOTCONN' && e.code !== 'ECONNABORTED',
  )

/** The mountpoint must be a directory; a dead vstor mount (ENOTCONN) left there is cleared first. */
async function prepareMountpoint(mnt: string): Promise<void> {
  const m = (await mountInfo()).find((e) => e.mountpoint === mnt)
  if (m) {
    if ((await answers(mnt)) || m.fstype !== 'fuse.vstor') {
      throw new VstorError('MOUNT_FAILED', `${mnt} is already a mount point (${m.fstype}); unmount it first (\`vstor unmount ${mnt}\`)`)
    }
    // fusermount's auto_unmount helper may remove it at the same moment: gone is what we want
    await fuseUnmount(mnt, true).catch(async (e: unknown) => {
      if (await isMounted(mnt)) throw e
    })
  }
  await checkDirectory(mnt)
}

/** An existing, empty directory (FUSE would hide anything in it). */
async function checkDirectory(mnt: string): Promise<void> {
  const st = await fs.promises.stat(mnt).catch((e: NodeJS.ErrnoException) => {
    throw new VstorError('MOUNT_FAILED', `mountpoint ${mnt}: ${e.code === 'ENOENT' ? 'does not exist; create it with mkdir' : e.message}`)
  })
  if (!st.isDirectory()) throw new VstorError('MOUNT_FAILED', `mountpoint ${mnt} is not a directory`)
  if ((await fs.promises.readdir(mnt)).length > 0)
    throw new VstorError('MOUNT_FAILED', `mountpoint ${mnt} is not empty: use an empty directory`)
}

/** Start `vstor mount MNT --foreground` detached; resolves once its images are visible. */
export async function startAgentDetached(opts: AgentOptions): Promise<{ pid: number }> {
  const mnt = path.resolve(opts.mountpoint)
  // Refuse plain mistakes here, with their own message and exit code, before a child is spawned.
  const m = (await mountInfo()).find((e) => e.mountpoint === mnt)
  if (m && m.fstype !== 'fuse.vstor') {
    throw new VstorError('MOUNT_FAILED', `${mnt} is already a mount point (${m.fstype}); choose another directory`)
  }
  if (m && (await answers(mnt))) {
    throw new VstorError('MOUNT_FAILED', `a vstor agent already serves ${mnt}; stop it first with \`vstor unmount ${mnt}\``)
  }
  if (!m) await checkDirectory(mnt)
  const args = ['mount', mnt, '--foreground', '--socket', path.resolve(opts.socket)]
  if (opts.agentId) args.push('--agent-id', opts.agentId)
  if (opts.faultTimeoutMs !== undefined) args.push('--fault-timeout', `${opts.faultTimeoutMs}ms`)
  if (opts.io) args.push('--io', opts.io)
  for (const g of opts.scan ?? []) args.push('--scan', g)
  if (opts.uid !== undefined) args.push('--uid', String(opts.uid))
  if (opts.gid !== undefined) args.push('--gid', String(opts.gid))
  if (opts.mode !== undefined) args.push('--mode', `0${opts.mode.toString(8)}`)
  const c = opts.controller
  if (c) args.push('--controller', formatHostPort(c.host, c.port), '--tls-dir', path.resolve(c.tlsDir))
  if (opts.fuse) args.push('--fuse', opts.fuse)
  // With --io async, device I/O runs on libuv's thread pool; 4 threads (the default) would cap queue depth.
  const env = process.env
  env.UV_THREADPOOL_SIZE ??= '16'
  return spawnDetached({ args, logFile: logFilePath(mnt, opts.socket), readyTimeoutMs: 60_000 })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Stop the agent serving mountpoint; clear a dead agent's mount (dead: true); refuse while busy. */
export async function unmountAgent(mountpoint: string, socket: string): Promise<{ dead: boolean }> {
  const mnt = path.resolve(mountpoint)
  const pidFile = pidFilePath(mnt, socket)
  const info = await fs.promises
    .readFile(pidFile, 'utf8')
    .then((t) => JSON.parse(t) as PidFile)
    .catch(() => null)
  const pid = info && running(info.pid) ? info.pid : null
  const mounted = (await mountInfo()).find((e) => e.mountpoint === mnt)
  if (!pid) {
    await fs.promises.rm(pidFile, { force: true })
    if (!mounted) throw new VstorError('NOT_MOUNTED', `no vstor agent serves ${mnt} and nothing is mounted there`)
    if (mounted.fstype !== 'fuse.vstor') throw new VstorError('NOT_MOUNTED', `${mnt} is a ${mounted.fstype} mount, not vstor`)
    // Dead agent: the mount answers ENOTCONN; detach it.
    await fuseUnmount(mnt, false)
      .catch(() => fuseUnmount(mnt, true))
      .catch(async (e: unknown) => {
        if (await isMounted(mnt)) throw e // else fusermount's auto_unmount helper was quicker
      })
    return { dead: true }
  }
  // Unmount first (not lazily), so a busy mount is refused and the agent keeps serving.
  if (mounted) await fuseUnmount(mnt, false)
  process.kill(pid, 'SIGTERM')
  for (let waited = 0; running(pid) || (await isMounted(mnt)); waited += 100) {
    if (waited >= 30_000)
      throw new VstorError('TIMEOUT', `agent ${pid} for ${mnt} did not stop within 30 s; see ${logFilePath(mnt, socket)}`)
    await sleep(100)
  }
  return { dead: false }
}
