// The fio targets: a raw file, a qemu-storage-daemon FUSE export of a raw file, and the vstor
// images (bench/vstor.ts): one thick disk through three front ends (fn: fuse-native, libfuse 2;
// js: libfuse3 with every request through JS; thick: libfuse3 with the native mapped path),
// and a freshly created thin disk.
//
// Invariants:
//   * every resource set up here registers its teardown with Cleanup before it can leak, and
//     Cleanup.run() never throws, so a failed or interrupted run leaves no mount or process behind;
//   * all backing files live in one temp dir on the same file system (os.tmpdir()).

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { prefill, run } from './fio'

export const ROOT = path.resolve(__dirname, '..', '..')
export const VSTOR_BIN = path.join(ROOT, 'bin', 'vstor')

/** Every fio target, in the order they run and appear in the report. */
export const TARGET_KEYS = ['raw', 'qsd', 'fn', 'js', 'thick', 'thin'] as const
export type TargetKey = (typeof TARGET_KEYS)[number]

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

export const sizeOf = async (file: string): Promise<number> => (await fs.promises.stat(file).catch(() => null))?.size ?? -1

/** Wait up to 15 s for a foreground child to exit, then SIGTERM it (then SIGKILL). */
export async function waitExit(child: ChildProcess | null): Promise<void> {
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
export async function sparse(file: string, size: number): Promise<void> {
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
