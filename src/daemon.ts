// Detaching daemons (controller, agent) with a readiness pipe.
// The parent spawns `node bin/vstor …` detached with fd 3 as a pipe and
// VSTOR_READY_FD=3; the child writes `ready` or `error <message>` there once.
// Invariant: the parent's promise settles exactly once: ready, reported
// failure, early exit (with the log's tail), or timeout.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { VstorError } from './errors'

/** bin/vstor, relative to this file (dist/src/daemon.js → ../../bin/vstor). */
export function vstorBin(): string {
  return path.resolve(__dirname, '../../bin/vstor')
}

function logTail(file: string, lines = 10): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n')
    return text.slice(-lines).join('\n')
  } catch {
    return ''
  }
}

export function spawnDetached(opts: { args: string[]; logFile: string; readyTimeoutMs: number }): Promise<{ pid: number }> {
  // Logs name disks, devices and paths: root only, like the database.
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true, mode: 0o700 })
  const log = fs.openSync(opts.logFile, 'a', 0o600)
  fs.fchmodSync(log, 0o600) // a log made by an older vstor
  const child = spawn(process.execPath, [vstorBin(), ...opts.args], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    env: { ...process.env, VSTOR_READY_FD: '3' },
  })
  fs.closeSync(log)
  const pipe = child.stdio[3] as Readable
  return new Promise((resolve, reject) => {
    let done = false
    let buf = ''
    const finish = (err: VstorError | null) => {
      if (done) return
      done = true
      clearTimeout(timer)
      child.removeAllListeners('close')
      pipe.removeAllListeners('data')
      pipe.on('error', () => undefined)
      pipe.destroy()
      child.unref()
      if (err) reject(err)
      else resolve({ pid: child.pid as number })
    }
    const timer = setTimeout(() => {
      finish(
        new VstorError('START_FAILED', `${opts.args.join(' ')} did not report ready within ${opts.readyTimeoutMs} ms; see ${opts.logFile}`),
      )
    }, opts.readyTimeoutMs)
    pipe.setEncoding('utf8')
    pipe.on('data', (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line === 'ready') finish(null)
        else if (line.startsWith('error ')) finish(new VstorError('START_FAILED', line.slice(6)))
      }
    })
    pipe.on('error', () => undefined)
    child.on('error', (e) => finish(new VstorError('START_FAILED', `cannot start ${vstorBin()}: ${e.message}`)))
    // 'close' comes after the pipe drained, so a last `error …` line wins over the exit
    child.on('close', (code, signal) => {
      const tail = logTail(opts.logFile)
      finish(
        new VstorError(
          'START_FAILED',
          `the daemon exited (${signal ?? `code ${code}`}) before it was ready${tail ? `; last lines of ${opts.logFile}:\n${tail}` : ''}`,
        ),
      )
    })
  })
}

function readyFd(): number | null {
  const v = process.env.VSTOR_READY_FD
  if (!v) return null
  delete process.env.VSTOR_READY_FD
  const fd = Number(v)
  return Number.isInteger(fd) && fd >= 0 ? fd : null
}

function sendReady(line: string): void {
  const fd = readyFd()
  if (fd === null) return
  try {
    fs.writeSync(fd, line + '\n')
  } catch {
    // EPIPE: the parent gave up waiting; nothing to tell
  }
  try {
    fs.closeSync(fd)
  } catch {
    // already closed
  }
}

/** In the child: tell the parent the daemon is up. No-op in the foreground. */
export function signalReady(): void {
  sendReady('ready')
}

/** In the child: tell the parent why it could not start. No-op in the foreground. */
export function signalFailed(message: string): void {
  sendReady('error ' + message.replace(/\n/g, ' '))
}

/** Whether a process exists (EPERM: it exists but is not ours to signal). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Alive and not a zombie: a killed or stopped daemon stays a zombie until init reaps it, which can take a while. */
export function pidRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const at = stat.lastIndexOf(')')
    return stat.slice(at + 2, at + 3) !== 'Z'
  } catch {
    return false
  }
}
