// An agent process (runAgent in a child) mounted over two labelled devices and fed by a
// FakeController, for the mount tests. Invariant: t.after unmounts, kills the agent and the nbd
// helpers, and removes the temp dir, whatever the test did; the test process touches the mount
// only through child processes and async calls.

import { spawn, execFile, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { pidFilePath } from '../../src/agent/index'
import { isMounted } from '../../src/agent/mounts'
import { writeLabel } from '../../src/device'
import { MiB } from '../../src/size'
import { spawnBg } from '../helpers/proc'
import { FakeController } from './fakectl'

export const ext = (vstart: number, length: number, device: number, pstart: number, flags = 0) => ({
  vstart,
  length,
  device,
  pstart,
  flags,
})

export function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) || 1 : 0, out: String(stdout) + String(stderr) })),
  )
}

export function canMount(t: TestContext): boolean {
  const why = process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync('/dev/fuse') ? 'needs /dev/fuse' : null
  if (!why) return true
  if (process.env.CI) throw new Error(`mount test ${why} (CI requires it)`)
  t.skip(why)
  return false
}

export async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (let waited = 0; !(await fn()); waited += 50) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
export const exists = (p: string) =>
  fs.promises.stat(p).then(
    () => true,
    () => false,
  )

export async function setup(t: TestContext, opts: { slowDev2?: boolean } = {}) {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-agent-'))
  const mnt = path.join(dir, 'mnt')
  const socket = path.join(dir, 'run', 'vstor.sock')
  await fs.promises.mkdir(mnt)
  const dev1 = path.join(dir, 'dev1')
  await fs.promises.writeFile(dev1, '')
  await fs.promises.truncate(dev1, 8 * MiB)
  let dev2 = path.join(dir, 'dev2')
  await fs.promises.writeFile(dev2, '')
  await fs.promises.truncate(dev2, 8 * MiB)
  const cleanups: (() => Promise<void>)[] = []
  let nbdkit = 0
  if (opts.slowDev2) {
    // dev2 served by nbdkit through nbdfuse: SIGSTOP nbdkit and I/O there hangs until SIGCONT
    const sock = path.join(dir, 'nbd.sock')
    const nbdMnt = path.join(dir, 'nbd')
    await fs.promises.mkdir(nbdMnt)
    const kit = spawnBg('nbdkit', ['-f', '-U', sock, 'file', dev2], { timeoutMs: 0 })
    nbdkit = kit.child.pid ?? 0
    await waitFor('nbdkit socket', () => exists(sock))
    const fuse = spawnBg('nbdfuse', [nbdMnt, '--unix', sock], { timeoutMs: 0 })
    cleanups.push(async () => {
      try {
        process.kill(nbdkit, 'SIGCONT')
      } catch {
        // gone
      }
      await sh('fusermount', ['-u', nbdMnt])
      // still busy (a test that failed with I/O stuck there): detach it, or it stays as ENOTCONN
      if (await isMounted(nbdMnt)) await sh('umount', ['-l', nbdMnt])
      fuse.child.kill('SIGKILL')
      kit.child.kill('SIGKILL')
      await Promise.all([fuse.done, kit.done])
    })
    dev2 = path.join(nbdMnt, 'nbd')
    await waitFor('nbdfuse file', () => exists(dev2))
  }
  const label = (name: string) => ({ version: 1, uuid: `uuid-${name}`, controllerId: 'fake', name, createdAt: new Date().toISOString() })
  await writeLabel(dev1, label('a'))
  await writeLabel(dev2, label('b'))
  const ctl = new FakeController(
    socket,
    [
      { id: 1, name: 'a', uuid: 'uuid-a', hint: dev1 },
      { id: 2, name: 'b', uuid: 'uuid-b', hint: dev2 },
    ],
    [{ name: 'd', size: 4 * MiB, extents: [ext(0, 2 * MiB, 1, MiB), ext(2 * MiB, 2 * MiB, 2, MiB)] }],
  )
  await ctl.start()
  let child: ChildProcess | null = null
  const startAgent = async (opts: { fuse?: string } = {}) => {
    const mod = path.resolve(__dirname, '../../src/agent/index.js')
    const args = JSON.stringify({ mountpoint: mnt, socket, faultTimeoutMs: 3000, ...opts })
    const code = `require(${JSON.stringify(mod)}).runAgent(${args}).then(()=>process.exit(0),e=>{console.error(e.message);process.exit(1)})`
    child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'inherit', 'inherit'] })
    await waitFor('the agent pid file', () => exists(pidFilePath(mnt, socket)))
  }
  t.after(async () => {
    if (await isMounted(mnt)) {
      await sh('fusermount', ['-u', mnt])
      if (await isMounted(mnt)) await sh('umount', ['-l', mnt])
    }
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r))
      child.kill('SIGKILL')
      await gone // its fds of the devices are closed before they are unmounted
    }
    for (const c of cleanups) await c()
    await ctl.server.close()
    await fs.promises.rm(dir, { recursive: true, force: true })
  })
  return { dir, mnt, socket, dev1, dev2, nbdkit, ctl, startAgent, img: path.join(mnt, 'd.img'), child: () => child }
}
