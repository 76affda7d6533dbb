// An in-memory Store that models power loss: completed writes live in a
// volatile cache until an fdatasync covers them; powerLoss() drops them.
//
// Invariants (the fdatasync contract the agent relies on): a sync makes
// durable every write that completed before the sync was called, and nothing
// else is promised; reads see every completed write; with holdSyncs set, a
// sync's completion waits until release(), so a test can keep an fsync round
// in flight while other requests arrive.

import type { IoCallback, Store } from '../../src/agent/store'

interface Pending {
  id: number
  pos: number
  data: Buffer
}

export class PowerStore implements Store {
  /** What survives power loss. */
  durable: Buffer
  /** What reads see now. */
  current: Buffer
  private volatile: Pending[] = []
  private nextId = 1
  /** Delay write completion by 0..maxDelay event-loop turns (a random source keeps it replayable). */
  writeTurns: () => number = () => 0
  holdSyncs = false
  private held: (() => void)[] = []
  syncs = 0

  constructor(size: number) {
    this.durable = Buffer.alloc(size)
    this.current = Buffer.alloc(size)
  }

  read(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    setImmediate(() => {
      this.current.copy(buf, off, pos, pos + len)
      cb(null)
    })
  }

  write(buf: Buffer, off: number, len: number, pos: number, cb: IoCallback): void {
    const data = Buffer.from(buf.subarray(off, off + len))
    let turns = this.writeTurns()
    const step = (): void => {
      if (turns-- > 0) return void setImmediate(step)
      data.copy(this.current, pos)
      this.volatile.push({ id: this.nextId++, pos, data })
      cb(null)
    }
    setImmediate(step)
  }

  sync(cb: IoCallback): void {
    this.syncs++
    // Covered: the writes completed before this call (later ones may or may not be; we say not).
    const upTo = this.nextId - 1
    const finish = (): void => {
      // in completion order, so a later write to the same bytes wins
      for (const p of this.volatile) if (p.id <= upTo) p.data.copy(this.durable, p.pos)
      this.volatile = this.volatile.filter((p) => p.id > upTo)
      cb(null)
    }
    if (this.holdSyncs) this.held.push(finish)
    else setImmediate(finish)
  }

  /** Complete the syncs held so far. */
  release(): void {
    for (const f of this.held.splice(0)) f()
  }

  get heldSyncs(): number {
    return this.held.length
  }

  /** The lights go out: what was not made durable is gone. */
  powerLoss(): void {
    this.volatile = []
    this.current = Buffer.from(this.durable)
  }

  close(): void {}
}
