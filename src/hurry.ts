// While a move's fence holds writes to a chunk, the threads that must act before they go on hurry:
// the agent's main thread (it reads the switch off the socket and applies it) and the controller's
// (it takes the fence's acks, commits the switch and pushes it) run SCHED_FIFO (priority.ts). With
// normal policy, under I/O on 2 busy cores, each such wakeup waited up to 45 ms behind other
// sessions' threads (autogroups are weighed first, so thread nice did not help), and raising the
// agent's whole autogroup instead cost foreground reads a third of their IOPS. Neither thread does
// much in that window: a held write parks in the agent's range gate, reads go on in the front
// end's threads, the copy runs on the thread pool.
//
// Invariants: the thread is real-time exactly while some hold is open; every call comes from the
// thread that is switched (the main thread); a hold closes when it is released (a change over its
// range applied or pushed, its disk's table replaced or gone) or after HOLD_MAX_MS (a controller
// that died mid-move leaves the fence until its restart: no thread stays real-time for that).

/** Longest a hold keeps the thread real-time (a chunk's stall is normally well under 50 ms). */
export const HOLD_MAX_MS = 1000

interface Hold {
  disk: string
  start: number
  end: number
  timer: NodeJS.Timeout
}

export class Hurry {
  private readonly holds = new Set<Hold>()

  constructor(
    /** Switch the calling thread to real-time or back (priority.ts realtimeSwitch). */
    private readonly realtime: (on: boolean) => void,
    private readonly maxMs = HOLD_MAX_MS,
  ) {}

  /** Writes to [start, end) of disk wait from now until a change there follows. */
  hold(disk: string, start: number, end: number): void {
    const h: Hold = { disk, start, end, timer: setTimeout(() => this.close(h), this.maxMs) }
    h.timer.unref()
    if (this.holds.size === 0) this.realtime(true)
    this.holds.add(h)
  }

  /** A change over [start, end) of disk applied (no range: the disk's whole table changed or went). */
  release(disk: string, start = 0, end = Infinity): void {
    if (start >= end) return // an empty change touches no range
    for (const h of this.holds) if (h.disk === disk && h.start < end && start < h.end) this.close(h)
  }

  /** Every hold closes (a whole load, or the agent stops). */
  clear(): void {
    for (const h of this.holds) this.close(h)
  }

  get held(): number {
    return this.holds.size
  }

  private close(h: Hold): void {
    if (!this.holds.delete(h)) return
    clearTimeout(h.timer)
    if (this.holds.size === 0) this.realtime(false)
  }
}
