// Network LUNs and "hosts" with their own mounts for the netns tests: nbdkit serving a sparse
// file in one namespace, nbdfuse making the export a file in another, and a private mount
// namespace so a path can hold the LUN on one host and something else on the others.
//
// Invariants:
//   * every process started here is a child of a NetLab (spawnIn), so the lab kills it at
//     teardown even when the test failed; nbdfuse mounts are unmounted in lab.defer first
//     (umount, then nbdfuse exits by itself), mounts inside a private mount namespace go away
//     with it (its holder and every process in it die at teardown);
//   * ready means ready: nbdkit and nbdfuse are waited for through their pid files (-P), which
//     they write only once they serve;
//   * nbdkit listens on one given address only (198.18.0.0/15 from the lab), never on all.

import fs from 'node:fs'
import type { NetLab, Ns } from './netns'
import { isMounted, pidDead, sh, waitFor, type ShOptions, type ShResult } from './proc'

/** A namespace whose processes may also share a private mount namespace (one host's view of files). */
export interface Host {
  ns: Ns
  /** /proc/PID/ns/mnt of the holder, or null: the test's own mounts. */
  mnt: string | null
  run(cmd: string, args: string[], opts?: ShOptions): Promise<ShResult>
  runOk(cmd: string, args: string[], opts?: ShOptions): Promise<ShResult>
}

function enterArgs(host: { mnt: string | null }, cmd: string, args: string[]): [string, string[]] {
  return host.mnt ? ['nsenter', [`--mount=${host.mnt}`, '--', cmd, ...args]] : [cmd, args]
}

/**
 * A host in ns. With privateMounts, its processes see a copy of the mount table (propagation
 * private): what they mount stays theirs; files on shared file systems are still shared.
 */
export async function host(lab: NetLab, ns: Ns, opts: { privateMounts?: boolean } = {}): Promise<Host> {
  let mnt: string | null = null
  if (opts.privateMounts) {
    const holder = lab.spawnIn(ns, 'unshare', ['--mount', '--propagation', 'private', '--', 'sleep', 'infinity'])
    const pid = holder.child.pid ?? 0
    const own = fs.readlinkSync('/proc/self/ns/mnt')
    // unshare execs sleep in place: the child's pid is the holder's once its mount namespace differs
    await waitFor('the private mount namespace', () => !pidDead(pid) && fs.readlinkSync(`/proc/${pid}/ns/mnt`) !== own, 10_000, 20)
    mnt = `/proc/${pid}/ns/mnt`
  }
  const h: Host = {
    ns,
    mnt,
    run: (cmd, args, o) => lab.run(ns, ...enterArgs(h, cmd, args), o),
    runOk: (cmd, args, o) => lab.runOk(ns, ...enterArgs(h, cmd, args), o),
  }
  return h
}

/** nbdkit's file plugin on `file`, listening on ip:port in ns (foreground, killed by the lab). */
export async function serveLun(lab: NetLab, ns: Ns, file: string, ip: string, port = 10809): Promise<string> {
  const pidFile = `${file}.nbdkit.pid`
  fs.rmSync(pidFile, { force: true })
  const b = lab.spawnIn(ns, 'nbdkit', ['-f', '-i', ip, '-p', String(port), '-P', pidFile, 'file', `file=${file}`])
  await waitFor(`nbdkit on ${ip}:${port}`, async () => {
    if (b.child.exitCode !== null) throw new Error(`nbdkit exited: ${(await b.done).stderr}`)
    return fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== ''
  })
  return `nbd://${ip}:${port}`
}

/**
 * nbdfuse on host: the export at uri becomes the file `at` (a "naked" mount over a regular file,
 * created empty when missing). Unmounted in lab.defer.
 */
export async function attachLun(lab: NetLab, h: Host, uri: string, at: string): Promise<void> {
  if (!fs.existsSync(at)) fs.writeFileSync(at, '')
  const pidFile = `${at}.nbdfuse.pid`
  fs.rmSync(pidFile, { force: true })
  const [cmd, args] = enterArgs(h, 'nbdfuse', ['-P', pidFile, at, uri])
  const b = lab.spawnIn(h.ns, cmd, args)
  lab.defer(async () => {
    if (b.child.exitCode !== null) return
    await h.run('umount', [at], { timeoutMs: 20_000 })
    if (!h.mnt && isMounted(at)) await sh('umount', ['-l', at], { timeoutMs: 20_000 })
    await Promise.race([b.done, new Promise((r) => setTimeout(r, 5_000))])
  })
  await waitFor(`nbdfuse at ${at}`, async () => {
    if (b.child.exitCode !== null) throw new Error(`nbdfuse exited: ${(await b.done).stderr}`)
    return fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== ''
  })
}
