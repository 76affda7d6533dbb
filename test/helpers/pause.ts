// Pausing an I/O generator (fio with ioengine=io_uring) so that nothing it
// submitted is still in flight: SIGSTOP, then poll the FUSE connection of the
// image's mount until it has no request outstanding.
//
// Invariant: a stopped process submits nothing new, and the FUSE connection's
// `waiting` count (fusectl, /sys/fs/fuse/connections/N/waiting) covers every
// request the kernel sent the agent and the agent has not answered; at 0 every
// write the process submitted has reached the disk, so the image no longer
// changes until SIGCONT. (Its io_uring ring may still hold completions: with
// asynchronous direct I/O the kernel posts them in the stopped task's context,
// so the ring's counters cannot tell. A blind sleep would only make it likely.)

import { execFileSync } from 'node:child_process'
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

const FUSECTL = '/sys/fs/fuse/connections'

/** Requests the FUSE connection serving `file` has outstanding (fusectl is mounted if it is not). */
export function fuseWaiting(file: string): number {
  if (!fs.existsSync(`${FUSECTL}`) || fs.readdirSync(FUSECTL).length === 0) {
    execFileSync('mount', ['-t', 'fusectl', 'none', FUSECTL], { stdio: 'ignore' })
  }
  const dev = fs.statSync(file).dev
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00)
  return Number(fs.readFileSync(`${FUSECTL}/${minor}/waiting`, 'utf8').trim())
}

/** SIGSTOP pid and wait until the mount serving `image` has no request of it outstanding. Returns a resume function. */
export async function pauseIo(pid: number, image: string): Promise<() => void> {
  process.kill(pid, 'SIGSTOP')
  const resume = (): void => void process.kill(pid, 'SIGCONT')
  try {
    await waitFor(`no I/O of pid ${pid} in flight on ${image}`, () => fuseWaiting(image) === 0, 30_000, 5)
  } catch (e) {
    resume()
    throw e
  }
  return resume
}
