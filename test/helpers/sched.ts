// A thread's scheduling policy and nice, from /proc.

import fs from 'node:fs'

/** Field 41 of a thread's stat (0 SCHED_OTHER, 1 SCHED_FIFO) and field 19 (nice); pid: another process. */
export function policy(tid: number | 'thread-self' = 'thread-self', pid: number | 'self' = 'self'): { policy: number; nice: number } {
  const file = tid === 'thread-self' ? '/proc/thread-self/stat' : `/proc/${pid}/task/${tid}/stat`
  const stat = fs.readFileSync(file, 'utf8')
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
  return { policy: Number(f[38]), nice: Number(f[16]) }
}
