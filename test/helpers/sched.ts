// Threads' scheduling policy and nice, from /proc.

import fs from 'node:fs'

export interface Sched {
  /** Field 41 of the thread's stat: 0 SCHED_OTHER, 1 SCHED_FIFO. */
  policy: number
  /** Field 19. */
  nice: number
}

function parse(stat: string): Sched {
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
  return { policy: Number(f[38]), nice: Number(f[16]) }
}

/** The calling thread's. */
export function policy(): Sched {
  return parse(fs.readFileSync('/proc/thread-self/stat', 'utf8'))
}

/** Every thread of a process, by thread id (threads that end meanwhile are left out). */
export function threads(pid: number | 'self' = 'self'): Map<number, Sched> {
  const out = new Map<number, Sched>()
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), parse(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')))
    } catch {
      // the thread ended
    }
  }
  return out
}
