// Start memfs-child.js (a file system served through a FUSE front end) in a child process and
// talk to it. Invariants: the test process only touches the mount through other processes or
// async calls; t.after kills the child and removes the mount (fusermount -u, then umount -l) and
// its temp dir, whatever the test did.

import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { fuse3Available } from '../../../src/agent/frontend/fuse3'
import { missingRequirement, SkipTest } from '../../helpers/instance'
import { forceUnmount, isMounted } from '../../helpers/proc'
import type { ChildConfig, FromChild, Stats, ToChild } from './memfs-child'

export interface Served {
  dir: string
  mnt: string
  child: ChildProcess
  /** The mount event (negotiated connection for fuse3). */
  mounted: Extract<FromChild, { ev: 'mounted' }>
  send(m: ToChild): void
  /** The next message of this kind (including ones already received and not yet taken). */
  next<K extends FromChild['ev']>(ev: K): Promise<Extract<FromChild, { ev: K }>>
  stats(): Promise<Stats>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Skip (or, under CI, fail) when FUSE mounts cannot run here or the addon is not built. */
export function requireFuse3(t: TestContext): void {
  let why = missingRequirement()
  if (!why && !fuse3Available()) {
    why = 'needs native/fuse3 built (bin/setup)'
    if (process.env.CI) throw new Error(`front-end test ${why}; under CI this is a failure`)
  }
  if (why) {
    t.skip(why)
    throw new SkipTest(why)
  }
}

export async function serve(t: TestContext, cfg: Omit<ChildConfig, 'mnt'>): Promise<Served> {
  if (cfg.frontend === 'fuse3') requireFuse3(t)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-fe-'))
  fs.chmodSync(dir, 0o755) // other users reach the mount (default_permissions tests)
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  const child = fork(path.join(__dirname, 'memfs-child.js'), [JSON.stringify({ ...cfg, mnt })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const inbox: FromChild[] = []
  const waiters: { ev: string; resolve: (m: FromChild) => void }[] = []
  child.on('message', (m: FromChild) => {
    const i = waiters.findIndex((w) => w.ev === m.ev)
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m)
    else inbox.push(m)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    await forceUnmount(mnt)
    if (!isMounted(mnt)) fs.rmSync(dir, { recursive: true, force: true })
  })
  const next = <K extends FromChild['ev']>(ev: K): Promise<Extract<FromChild, { ev: K }>> => {
    const i = inbox.findIndex((m) => m.ev === ev)
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as Extract<FromChild, { ev: K }>)
    return new Promise((resolve, reject) => {
      waiters.push({ ev, resolve: resolve as (m: FromChild) => void })
      void exited.then((x) => reject(new Error(`memfs child exited (${x.code ?? x.signal}) while waiting for ${ev}`)))
    })
  }
  const first = await Promise.race([next('mounted'), next('error')])
  if (first.ev === 'error') throw new Error(`memfs child: ${first.message}`)
  const send = (m: ToChild): void => void child.send(m)
  const stats = async (): Promise<Stats> => {
    const reply = next('stats')
    send({ cmd: 'stats' })
    return (await reply).stats
  }
  return { dir, mnt, child, mounted: first, send, next, stats, exited }
}
