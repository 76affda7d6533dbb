// Scheduling priority of the daemons. A move holds writes to a chunk from when each agent blocks it
// for the fence to when it applies the switch; between the two the agent wakes the controller,
// which commits (a dozen SQLite statements, each a hop to its thread pool) and wakes the agent.
// On a host whose CPUs are busy with I/O every wakeup waits its turn: under 4k reads at QD16 on
// 2 cores the agent's main thread waited up to 50 ms behind its own FUSE I/O threads, and the
// controller's statements 20-50 ms each behind the processes doing that I/O.
//
// So:
//   * the agent's main thread (table changes, fault replies, I/O the native path sends to JS) runs
//     BOOST nice levels above its I/O threads; raised once the front end's threads exist, as nice
//     is per thread on Linux (os.setPriority changes the calling thread; threads keep theirs, and
//     threads started later inherit their creator's);
//   * the controller (mostly asleep; its CPU goes to commits and a move's copy, which rests while
//     agents serve I/O) runs every thread BOOST levels up, and its autogroup too when it leads its
//     session (a detached start): with autogroup scheduling on, the kernel weighs sessions against
//     each other first and thread nice only counts within one. A controller in the foreground of
//     a terminal leaves the terminal's session alone.
//   * while a move's fence holds writes, both go further: SCHED_FIFO (src/hurry.ts, realtimeSwitch).
// Raising needs root or CAP_SYS_NICE; without it the daemon says so once and runs as it is.

import fs from 'node:fs'
import os from 'node:os'
import { loadBlkio } from './device/blkio'

/** Nice levels the latency-critical threads run above the rest. */
export const BOOST = 10

type Log = (msg: string) => void

/** Set thread tid (0: the calling one) to BOOST levels above base, at most to -20; the nice it runs at. */
function raise(tid: number, base: number): number {
  const want = Math.max(-20, base - BOOST)
  if (want < base) os.setPriority(tid, want)
  return want
}

/** The calling thread, BOOST levels up (the agent's main thread). Returns its nice. */
export function raiseThisThread(log: Log): number {
  const base = os.getPriority()
  try {
    return raise(0, base)
  } catch (e) {
    log(`main thread stays at nice ${base}: ${(e as Error).message} (raising it needs root or CAP_SYS_NICE)`)
    return base
  }
}

/** This process's session id (field 6 of /proc/self/stat; the name before it may hold anything). */
function sessionId(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8')
  return Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[3])
}

/**
 * Every thread of this process BOOST levels up, and its autogroup when it leads its session (the
 * controller). Returns the nice of its threads and of its autogroup (null: not changed, or no
 * autogroup scheduling in this kernel).
 */
export function raiseProcess(log: Log): { nice: number; autogroup: number | null } {
  const base = os.getPriority()
  let nice = base
  let autogroup: number | null = null
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) nice = raise(Number(tid), base)
    if (sessionId() === process.pid && fs.existsSync('/proc/self/autogroup')) {
      const now = Number(/nice (-?\d+)/.exec(fs.readFileSync('/proc/self/autogroup', 'utf8'))?.[1] ?? 0)
      const want = Math.max(-20, now - BOOST)
      fs.writeFileSync('/proc/self/autogroup', String(want))
      autogroup = want
    }
  } catch (e) {
    log(`runs at nice ${nice}, autogroup unchanged: ${(e as Error).message} (raising needs root or CAP_SYS_NICE)`)
  }
  return { nice, autogroup }
}

/**
 * A switch between SCHED_FIFO and the normal policy (native/blkio) while a move's fence holds
 * writes (src/hurry.ts): of the calling thread (the agent's main thread; its I/O threads stay as
 * they are), or of every thread of the process (the controller: its switch commit runs on a
 * thread-pool thread, and under load that wait for a CPU took up to 45 ms of a 47 ms stall).
 * Without the addon or the right (root or CAP_SYS_NICE) it says so once and does nothing.
 */
export function realtimeSwitch(log: Log, scope: 'thread' | 'process'): (on: boolean) => void {
  const blkio = loadBlkio()
  let broken = blkio ? null : 'the native addon blkio is not built (bin/setup builds it)'
  return (on) => {
    if (broken) return
    try {
      if (scope === 'thread') blkio!.realtime(on, 0)
      else
        for (const tid of fs.readdirSync('/proc/self/task')) {
          try {
            blkio!.realtime(on, Number(tid))
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e // ESRCH: the thread ended
          }
        }
    } catch (e) {
      broken = (e as Error).message
      log(`stays in the normal scheduling policy while writes are held: ${broken} (real-time needs root or CAP_SYS_NICE)`)
    }
  }
}
