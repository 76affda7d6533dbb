// Per-disk in-flight tracking and range blocking: the agent's version of
// dm suspend/resume, per byte range (claims 31-32).
//
// Invariants:
//   * a request runs (fn called) only when no blocked range overlaps it; it
//     is registered as in flight from then until leave(token);
//   * quiesce(start, end) resolves only when no in-flight request overlaps
//     [start, end) and none can start there until release() is called;
//     quiesce(start, end, true) waits only for the writes in flight there (a
//     change that keeps every read's answer: see onlyWriteProtects);
//   * release() re-dispatches parked requests in arrival order; each one
//     resolves against the table as it is at that moment;
//   * requests that wait on the controller (faults) leave before they wait,
//     so quiesce never waits on the controller.
// Fast path: with no blocked range, enter() is a counter bump and a Map set.

interface Span {
  start: number
  end: number
}
interface Flight extends Span {
  write: boolean
}
interface Parked extends Flight {
  fn: (token: number) => void
}
interface Block extends Span {
  drained: () => void
  draining: boolean
  /** Waits only for writes in flight. */
  writes: boolean
}

const overlaps = (a: Span, start: number, end: number): boolean => a.start < end && start < a.end

export class RangeGate {
  private nextToken = 1
  private readonly inflight = new Map<number, Flight>()
  private blocks: Block[] = []
  private parked: Parked[] = []

  /** Requests in flight now (for tests and status). */
  get active(): number {
    return this.inflight.size
  }

  /** Requests parked behind a blocked range. */
  get waiting(): number {
    return this.parked.length
  }

  /** Run fn(token) now if [start, end) is not blocked, else park it until release. */
  enter(start: number, end: number, write: boolean, fn: (token: number) => void): void {
    if (this.blocks.length !== 0 && this.blocked(start, end)) {
      this.parked.push({ start, end, write, fn })
      return
    }
    const token = this.nextToken++
    this.inflight.set(token, { start, end, write })
    fn(token)
  }

  /** The request with this token is done (or leaves to wait on the controller). */
  leave(token: number): void {
    const span = this.inflight.get(token)
    if (!span) return
    this.inflight.delete(token)
    if (this.blocks.length === 0) return
    for (const b of this.blocks) {
      if (b.draining && overlaps(span, b.start, b.end) && !this.busy(b.start, b.end, b.writes)) {
        b.draining = false
        b.drained()
      }
    }
  }

  /** Block [start, end), wait for in-flight requests there (only writes: `writes`), and hand back the release. */
  quiesce(start: number, end: number, writes = false): Promise<() => void> {
    return new Promise((resolve) => {
      let released = false
      const release = (): void => {
        if (released) return
        released = true
        this.blocks = this.blocks.filter((b) => b !== block)
        this.redispatch()
      }
      const block: Block = { start, end, writes, draining: true, drained: () => resolve(release) }
      this.blocks.push(block)
      if (!this.busy(start, end, writes)) {
        block.draining = false
        block.drained()
      }
    })
  }

  private blocked(start: number, end: number): boolean {
    for (const b of this.blocks) if (overlaps(b, start, end)) return true
    return false
  }

  private busy(start: number, end: number, writes: boolean): boolean {
    for (const s of this.inflight.values()) if ((s.write || !writes) && overlaps(s, start, end)) return true
    return false
  }

  private redispatch(): void {
    const parked = this.parked
    this.parked = []
    for (const p of parked) this.enter(p.start, p.end, p.write, p.fn)
  }
}
