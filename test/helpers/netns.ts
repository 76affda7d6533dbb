// Network namespaces for one test: "hosts" joined by veth pairs on 198.18.0.0/15
// (the benchmarking range, RFC 2544), commands run inside with nsenter --net (the mount
// namespace stays shared, so files, FUSE mounts and bin/vstor are the same everywhere).
//
// Invariants:
//   * every name carries this process's pid and a counter (vs<pid>n<k> for namespaces,
//     v<pid36><k>a/b for veths, at most 15 bytes): parallel runs never collide; a name
//     left by a dead process with our pid is stale and is replaced;
//   * veths are created directly inside their namespaces (never in the test's own);
//   * in t.after: deferred cleanups (last first), then background children, then every
//     process still inside a namespace (detached daemons), then the namespaces (their
//     veths go with them); teardown problems become diagnostics, not failures.

import fs from 'node:fs'
import type { TestContext } from 'node:test'
import { pidDead, sh, shOk, sleep, spawnBg, type Background, type ShOptions, type ShResult } from './proc'

export interface Ns {
  name: string
  /** /run/netns/NAME, for nsenter --net= */
  path: string
}
export interface VethEnd {
  ns: Ns
  dev: string
  ip: string
}
export interface Veth {
  a: VethEnd
  b: VethEnd
  /** The /24 both ends are in, e.g. 198.18.1.0/24 */
  subnet: string
}

export interface NetLab {
  /** A new namespace with loopback up. */
  ns(): Promise<Ns>
  /** A veth pair between two namespaces, up, a = 198.18.k.1/24, b = 198.18.k.2/24 (k counts pairs). */
  veth(a: Ns, b: Ns): Promise<Veth>
  /** Another address on a device (e.g. one a certificate does not name). */
  addAddress(end: VethEnd, ip: string): Promise<void>
  setLink(end: VethEnd, state: 'up' | 'down'): Promise<void>
  /** Run to completion inside ns; never throws on a non-zero exit. */
  run(ns: Ns, cmd: string, args: string[], opts?: ShOptions): Promise<ShResult>
  /** Like run, but throws with the output on a non-zero exit. */
  runOk(ns: Ns, cmd: string, args: string[], opts?: ShOptions): Promise<ShResult>
  /** A background child inside ns, killed at teardown if still running. */
  spawnIn(ns: Ns, cmd: string, args: string[], opts?: ShOptions): Background
  /** Run at teardown before anything is killed (last registered runs first). */
  defer(fn: () => Promise<unknown> | unknown): void
}

/** Why netns tests cannot run here, or null. Under CI a missing requirement is an error. */
export function netnsMissing(): string | null {
  let why: string | null = null
  if (process.getuid?.() !== 0) why = 'needs root (network namespaces)'
  else if (!fs.existsSync('/usr/bin/nsenter') && !fs.existsSync('/bin/nsenter')) why = 'needs nsenter (util-linux)'
  if (why && process.env.CI) throw new Error(`network-namespace test ${why}; under CI this is a failure`)
  return why
}

/** Labs made by this process so far: keeps the names of several labs (tests) apart. */
let labCount = 0

const nsenter = (ns: Ns, cmd: string, args: string[]): string[] => [`--net=${ns.path}`, '--', cmd, ...args]

/** Namespaces and veths for this test, removed in t.after. Null (and the test skipped) without root. */
export async function netLab(t: TestContext): Promise<NetLab | null> {
  const why = netnsMissing()
  if (why) {
    t.skip(why)
    return null
  }
  const pid = process.pid
  const spaces: Ns[] = []
  const children: Background[] = []
  const deferred: (() => Promise<unknown> | unknown)[] = []
  let nsCount = 0
  let pairs = 0
  const lab = ++labCount

  const ip = (...args: string[]): Promise<ShResult> => shOk('ip', args, { timeoutMs: 30_000 })

  t.after(async () => {
    const problems: string[] = []
    const step = async (what: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await fn()
      } catch (e) {
        problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    for (const fn of deferred.reverse()) await step('deferred cleanup', fn)
    for (const b of children) if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL')
    await Promise.all(children.map((b) => b.done))
    for (const ns of spaces) await step(`processes in ${ns.name}`, () => killInside(ns))
    for (const ns of spaces.reverse()) await step(`ip netns del ${ns.name}`, () => ip('netns', 'del', ns.name))
    if (problems.length) t.diagnostic(`netns teardown: ${problems.join('; ')}`)
  })

  const netlab: NetLab = {
    async ns() {
      const name = `vs${pid}n${lab}x${++nsCount}`
      const ns = { name, path: `/run/netns/${name}` }
      if (fs.existsSync(ns.path)) {
        // our pid, our counter: left by a dead process that had this pid
        await killInside(ns)
        await ip('netns', 'del', name)
      }
      await ip('netns', 'add', name)
      spaces.push(ns)
      await ip('-n', name, 'link', 'set', 'lo', 'up')
      return ns
    },
    async veth(a, b) {
      const k = ++pairs
      if (k > 255) throw new Error('netLab: at most 255 veth pairs per lab')
      const base = `v${pid.toString(36)}${lab.toString(36)}x${k.toString(36)}`
      const ea: VethEnd = { ns: a, dev: `${base}a`, ip: `198.18.${k}.1` }
      const eb: VethEnd = { ns: b, dev: `${base}b`, ip: `198.18.${k}.2` }
      if (ea.dev.length > 15) throw new Error(`netLab: interface name ${ea.dev} is longer than 15 bytes`)
      await ip('link', 'add', ea.dev, 'netns', a.name, 'type', 'veth', 'peer', 'name', eb.dev, 'netns', b.name)
      for (const e of [ea, eb]) {
        await ip('-n', e.ns.name, 'addr', 'add', `${e.ip}/24`, 'dev', e.dev)
        await ip('-n', e.ns.name, 'link', 'set', e.dev, 'up')
      }
      return { a: ea, b: eb, subnet: `198.18.${k}.0/24` }
    },
    async addAddress(end, addr) {
      await ip('-n', end.ns.name, 'addr', 'add', `${addr}/24`, 'dev', end.dev)
    },
    async setLink(end, state) {
      await ip('-n', end.ns.name, 'link', 'set', end.dev, state)
    },
    run: (ns, cmd, args, opts = {}) => sh('nsenter', nsenter(ns, cmd, args), opts),
    runOk: (ns, cmd, args, opts = {}) => shOk('nsenter', nsenter(ns, cmd, args), opts),
    spawnIn(ns, cmd, args, opts = {}) {
      const b = spawnBg('nsenter', nsenter(ns, cmd, args), { timeoutMs: 0, ...opts })
      children.push(b)
      return b
    },
    defer: (fn) => void deferred.push(fn),
  }
  return netlab
}

/** SIGKILL every process inside ns (detached daemons started there) and wait until they are gone. */
async function killInside(ns: Ns): Promise<void> {
  const r = await sh('ip', ['netns', 'pids', ns.name], { timeoutMs: 30_000 })
  const pids = r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid)
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  for (let waited = 0; pids.some((p) => !pidDead(p)); waited += 50) {
    if (waited > 10_000) throw new Error(`processes ${pids.filter((p) => !pidDead(p)).join(' ')} in ${ns.name} did not die`)
    await sleep(50)
  }
}
