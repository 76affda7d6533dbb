// The agent's main thread answers the controller: it applies table changes (a move's fence and
// switch hold writes to a chunk until it has done both) and fault replies, and runs the I/O the
// native path sends to JS. Mapped I/O runs in the front end's worker threads. On a host whose CPUs
// are busy with that I/O, a woken main thread waited its turn behind the workers (a chunk's writes
// were held up to 200 ms under 4k reads at QD16 on 2 cores, mostly in that wait).
//
// So once the front end's threads exist, the main thread runs BOOST nice levels above them. Nice
// is per thread on Linux: os.setPriority() changes the calling thread; threads started before keep
// theirs, threads started later by this one inherit it (libuv's pool is up before the mount).

import os from 'node:os'

/** Nice levels the main thread runs above the process's other threads. */
export const BOOST = 10

/**
 * Raise the calling (main) thread BOOST levels above its nice at start, at most to -20. Returns the
 * nice it runs at; on refusal (no CAP_SYS_NICE: not root) it says why and keeps its priority.
 */
export function raiseMainThread(log: (msg: string) => void): number {
  const base = os.getPriority()
  const want = Math.max(-20, base - BOOST)
  if (want >= base) return base
  try {
    os.setPriority(want)
    return want
  } catch (e) {
    log(`main thread stays at nice ${base}: ${(e as Error).message} (raising it needs root or CAP_SYS_NICE)`)
    return base
  }
}
