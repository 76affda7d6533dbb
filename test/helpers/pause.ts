// Pausing an I/O generator (fio with ioengine=io_uring) so that nothing it
// submitted is still in flight: SIGSTOP, then poll the ring's counters.
//
// Invariant: a stopped process submits nothing new, and its io_uring
// fdinfo shows SqHead (entries the kernel consumed) and CqTail (completions
// the kernel posted); when they are equal on every ring, every request it
// submitted has completed, so the files it writes no longer change until
// SIGCONT. (A blind sleep would only make that likely.)

import fs from 'node:fs'
import { waitFor } from './proc'

interface Ring {
  fd: string
  sqHead: number
  cqTail: number
}

/** The io_uring instances of a process and their counters. */
export function rings(pid: number): Ring[] {
  const out: Ring[] = []
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let link = ''
    try {
      link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue // closed meanwhile
    }
    if (link !== 'anon_inode:[io_uring]') continue
    const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')
    const num = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(info)?.[1] ?? NaN)
    out.push({ fd, sqHead: num('SqHead'), cqTail: num('CqTail') })
  }
  return out
}

/** Requests submitted and not completed, over every ring of the process. */
export function inFlight(pid: number): number {
  const rs = rings(pid)
  if (rs.length === 0) throw new Error(`pid ${pid} has no io_uring (run fio with --ioengine=io_uring)`)
  const bad = rs.find((r) => !Number.isFinite(r.sqHead) || !Number.isFinite(r.cqTail))
  if (bad) throw new Error(`cannot read SqHead/CqTail in /proc/${pid}/fdinfo/${bad.fd}`)
  return rs.reduce((n, r) => n + ((r.sqHead - r.cqTail) >>> 0), 0)
}

/** SIGSTOP pid and wait until none of its io_uring requests is in flight. Returns a resume function. */
export async function pauseIo(pid: number): Promise<() => void> {
  process.kill(pid, 'SIGSTOP')
  const resume = (): void => void process.kill(pid, 'SIGCONT')
  try {
    await waitFor(`no I/O of pid ${pid} in flight`, () => inFlight(pid) === 0, 30_000, 5)
  } catch (e) {
    resume()
    throw e
  }
  return resume
}
