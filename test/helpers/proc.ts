// Child processes and mounts for the end-to-end tests.
//
// Invariants: every command runs through an async spawn (never spawnSync), so a
// FUSE mount served by a child of ours can never deadlock against the test
// process; every command has a timeout after which it is SIGKILLed, so a hung
// mount fails the test instead of hanging the suite.

import { pidAlive } from '../../src/daemon'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'

export interface ShResult {
  code: number
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface ShOptions {
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  cwd?: string
  input?: string | Buffer
  /** Leave the child's stdin open for the caller to write (spawnBg only). */
  stdinOpen?: boolean
}

export const DEFAULT_TIMEOUT_MS = 120_000

export interface Background {
  child: ChildProcess
  /** Resolves when the child exits (never rejects; a spawn error gives code 127). */
  done: Promise<ShResult>
}

/** Start a child with captured output; the caller decides when to wait. */
export function spawnBg(cmd: string, args: string[], opts: ShOptions = {}): Background {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout?.on('data', (b: Buffer) => out.push(b))
  child.stderr?.on('data', (b: Buffer) => err.push(b))
  child.stdin?.on('error', () => {})
  if (opts.input !== undefined) child.stdin?.end(opts.input)
  else if (!opts.stdinOpen) child.stdin?.end()
  const done = new Promise<ShResult>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    if (opts.timeoutMs !== 0) {
      timer = setTimeout(() => {
        err.push(Buffer.from(`\n[test helper: ${cmd} killed after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms]\n`))
        child.kill('SIGKILL')
      }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    }
    const finish = (code: number, signal: NodeJS.Signals | null): void => {
      if (timer) clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    }
    child.on('error', (e) => {
      err.push(Buffer.from(String(e)))
      finish(127, null)
    })
    child.on('close', (code, signal) => finish(code ?? 128, signal))
  })
  return { child, done }
}

/** Run a command to completion: {code, stdout, stderr}. Never throws on a non-zero exit. */
export function sh(cmd: string, args: string[], opts: ShOptions = {}): Promise<ShResult> {
  return spawnBg(cmd, args, opts).done
}

/** Like sh, but throws with the full output when the command fails. */
export async function shOk(cmd: string, args: string[], opts: ShOptions = {}): Promise<ShResult> {
  const r = await sh(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

/** qemu-io on a raw image, one -c per command. Output of every command is in stdout. */
export function qemuIoArgs(image: string, cmds: string[]): string[] {
  return ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), image]
}

export function qemuIo(image: string, cmds: string[], opts: ShOptions = {}): Promise<ShResult> {
  return sh('qemu-io', qemuIoArgs(image, cmds), opts)
}

/** qemu-io that must succeed: exit 0 and no command reporting a failure or a pattern mismatch. */
export async function qemuIoOk(image: string, cmds: string[], opts: ShOptions = {}): Promise<ShResult> {
  const r = await qemuIo(image, cmds, opts)
  if (r.code !== 0 || ioFailed(r)) {
    throw new Error(
      `qemu-io ${cmds.map((c) => `-c '${c}'`).join(' ')} ${image} failed (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    )
  }
  return r
}

/** True when qemu-io reported a failed command or a pattern mismatch. */
export function ioFailed(r: ShResult): boolean {
  return /failed|Pattern verification|mismatch/i.test(r.stdout + r.stderr)
}

/** The error text qemu-io printed (e.g. "Input/output error"), or '' when all commands passed. */
export function ioError(r: ShResult): string {
  const m = /(?:read|write|open|truncate)[^\n]*?failed: ([^\n]+)/i.exec(r.stdout + '\n' + r.stderr)
  return m?.[1]?.trim() ?? ''
}

/** Mount points from /proc/self/mountinfo (octal escapes decoded). */
export function mountPoints(): string[] {
  let text = ''
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
}

export function isMounted(dir: string): boolean {
  return mountPoints().includes(dir)
}

/** Unmount a FUSE mount the polite way first, then lazily; true when it is gone. */
export async function forceUnmount(dir: string): Promise<boolean> {
  if (!isMounted(dir)) return true
  for (const [cmd, args] of [
    ['fusermount', ['-u', dir]],
    ['fusermount3', ['-u', dir]],
    ['umount', [dir]],
    ['umount', ['-l', dir]],
  ] as const) {
    await sh(cmd, [...args], { timeoutMs: 20_000 })
    if (!isMounted(dir)) return true
  }
  return !isMounted(dir)
}

export { pidAlive }

/** True when the pid is gone or a zombie (killed, not yet reaped by its parent). */
export function pidDead(pid: number): boolean {
  if (!pidAlive(pid)) return true
  try {
    return /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** SIGKILL a pid only when it is still one of ours (its command line names node or the given marker). */
export function killIfOurs(pid: number, marker?: string): void {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || !pidAlive(pid)) return
  let cmdline = ''
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
  } catch {
    return
  }
  if (cmdline.includes(process.execPath) || cmdline.includes('node') || (marker !== undefined && cmdline.includes(marker))) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Poll until fn returns a truthy value or the time is up (then throw with what). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, stepMs = 100): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < until) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (e) {
      last = e
    }
    await sleep(stepMs)
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}
