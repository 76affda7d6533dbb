// Freed space on its way back to the pool: quarantine → dirty → clean.
//
// Invariants:
//   * a quarantined span (freed at generation G) stays unusable until every
//     known agent acked >= G or was forgotten: no agent with an older table can
//     still write it when it is handed out again;
//   * released space is dirty: it may hold another disk's bytes; allocations
//     zero dirty pieces before they commit, and the scrubber zeroes the rest in
//     the background (discard: punch hole / BLKZEROOUT) in short steps, so no
//     step stalls the other disks on that device for long, fdatasyncs, and only
//     then marks it clean;
//   * a range being scrubbed stays free (allocations need not wait for it),
//     but an allocation that takes part of it waits for that scrub to finish
//     before it zeroes and maps its pieces (waitScrub), so a late discard can
//     never punch away data written after the mapping; the scrub then marks
//     clean only what is still dirty;
//   * the `dirty` rows are a superset of dirty free space; every state change
//     is committed before memory changes.

import { MiB } from '../size'
import type { Span } from './allocator'
import type { Agents } from './agents'
import type { DeviceIo } from './devio'
import { log } from './log'
import { cutRows } from './rows'
import type { State } from './state'

/** Largest span the scrubber takes at once: an allocation that overlaps it waits for the whole span. */
export const SCRUB_CHUNK = 256 * MiB
/**
 * Discard steps inside a span. Each discard holds the device file's inode lock while ext4 frees the
 * extents under it (about 5 ms per MiB of 4k-fragmented space on a file system mounted with
 * `discard`, measured), and every write of every disk on that file waits behind it; so steps adapt
 * to take about STEP_TARGET_MS each, and after each the scrubber rests IDLE_FACTOR times as long:
 * a background scrub holds a device file at most 1/(1+IDLE_FACTOR) of the time (block devices,
 * where BLKDISCARD/BLKZEROOUT hold no such lock, get no rests). Unfragmented or sparse
 * space punches in microseconds, so there the steps grow to a whole span and the rests vanish.
 */
export const STEP_MIN = MiB
export const STEP_TARGET_MS = 20
export const IDLE_FACTOR = 2

/** The next discard step: doubled after a fast full step, halved after a slow one, within [STEP_MIN, SCRUB_CHUNK]. */
export function nextStep(step: number, len: number, ms: number): number {
  if (ms > 2 * STEP_TARGET_MS) return Math.max(STEP_MIN, step / 2)
  if (ms < STEP_TARGET_MS / 2 && len === step) return Math.min(SCRUB_CHUNK, step * 2)
  return step
}

/** Replace dirty rows over [start, end) of a device by the parts outside it (inside a transaction). */
export async function trimDirty(state: State, device: number, start: number, end: number): Promise<void> {
  await cutRows(state.db, 'dirty', device, start, end)
}

export class Space {
  private kicked = false
  private releasing: Promise<void> | null = null
  private scrubbing: Promise<void> | null = null
  private stopped = false
  /** Devices whose last scrub failed: retried after this time (ms epoch). */
  private readonly backoff = new Map<number, number>()
  /** The chunk being discarded now, when that is done, and whether an allocation waits for it (then it runs without rests). */
  private current: { span: Span; done: Promise<void>; waited: boolean } | null = null
  /** Discard step per device (nextStep); starts small so the first step never stalls I/O for long. */
  private readonly steps = new Map<number, number>()

  /**
   * `copying`: a job copies data now. The scrubber then starts no discard step (unless an allocation
   * waits for its span), and resumes when the jobs end (they kick it): on a file system mounted with
   * `discard`, a punch's cost lands in the next journal commit, which a move's commits then pay
   * inside its stall (measured: a chunk's switch commit 4 ms alone, 20 ms beside a scrub).
   */
  constructor(
    private readonly state: State,
    private readonly agents: Agents,
    private readonly io: DeviceIo,
    private readonly copying: () => boolean,
  ) {}

  /** Something changed (an ack, a forget, a release): release what is safe, scrub what is dirty. Debounced. */
  kick(): void {
    if (this.kicked || this.stopped) return
    // most acks find nothing to do: no lock, no timer
    if (this.state.quarantine.length === 0 && this.state.alloc.dirty.devices().every((d) => this.state.alloc.dirty.view(d).length === 0))
      return
    this.kicked = true
    setImmediate(() => {
      this.kicked = false
      this.releasing ??= this.release()
        .catch((e: Error) => log(`quarantine release failed: ${e.message}`))
        .finally(() => {
          this.releasing = null
          this.scrubbing ??= this.scrub().finally(() => (this.scrubbing = null))
        })
    })
  }

  /** Release what is safe now, under the lock (a delete returns with its space back in the pool when it can). */
  async releaseNow(): Promise<void> {
    await this.releasing
    await this.release().catch((e: Error) => log(`quarantine release failed: ${e.message}`))
    this.kick()
  }

  /** Wait for the current release and scrub passes (stop, tests). */
  async idle(): Promise<void> {
    while (this.releasing || this.scrubbing || this.kicked) {
      await this.releasing
      await this.scrubbing
      if (this.kicked) await new Promise((r) => setImmediate(r))
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.releasing
    await this.scrubbing
  }

  /**
   * Quarantine entries every known agent has passed become dirty free space. Only entries freed by a
   * durable commit: a lazily committed change (a move's switch) lost in a power failure would map the
   * space again, so it must not be scrubbed or reused before then. The barrier (an fsync, only when a
   * lazy commit is pending) runs before the lock; the release's own commit is lazy (lost, the entries
   * are quarantined again and released again), so the lock is never held across an fsync here.
   */
  private async release(): Promise<void> {
    const { state } = this
    const passed = state.quarantine.filter((q) => q.generation <= this.agents.minGeneration())
    if (passed.length === 0) return // most kicks: no fsync, no lock
    // a copying job makes its commits durable at each step (and kicks): no fsync here to hold the
    // transaction lock its next commit needs
    if (passed.some((q) => q.generation > state.durable) && !this.copying()) await state.barrier()
    await state.lock.run(async () => {
      const min = Math.min(this.agents.minGeneration(), state.durable)
      const ready = state.quarantine.filter((q) => q.generation <= min && state.devices.has(q.device))
      if (ready.length === 0) return
      await state.db.tx(
        async () => {
          for (const q of ready) {
            await state.db.queue('DELETE FROM quarantine WHERE device_id = ? AND pstart = ?', [q.device, q.pstart])
            await state.db.queue('INSERT OR REPLACE INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [
              q.device,
              q.pstart,
              q.length,
            ])
          }
        },
        { durable: false },
      )
      const gone = new Set(ready)
      state.quarantine = state.quarantine.filter((q) => !gone.has(q))
      state.alloc.give(ready, true)
      log(`released ${ready.length} quarantined range(s) (every agent is at generation ${min} or later, and it is durable)`)
    })
  }

  /** Wait until no scrub in flight overlaps these pieces (call outside the lock, before zeroing them). */
  async waitScrub(pieces: Span[]): Promise<void> {
    const c = this.current
    if (!c) return
    const hit = pieces.some(
      (p) => p.device === c.span.device && p.pstart < c.span.pstart + c.span.length && c.span.pstart < p.pstart + p.length,
    )
    if (!hit) return
    c.waited = true
    await c.done
  }

  /** Zero dirty free space, one chunk at a time, until none is left (or a device fails: retried later). */
  private async scrub(): Promise<void> {
    while (!this.stopped && !this.copying()) {
      const pick = await this.state.lock.run(async () => this.next())
      if (!pick) return
      let finish!: () => void
      const current = { span: pick, done: new Promise<void>((r) => (finish = r)), waited: false }
      this.current = current
      const d = this.state.devices.get(pick.device)
      let ok = false
      try {
        if (!d) throw new Error('the device left the pool')
        const dev = await this.io.get(d)
        const end = pick.pstart + pick.length
        const yielding = (): boolean => this.stopped || (!current.waited && this.copying())
        let pos = pick.pstart
        while (pos < end && !yielding()) {
          const step = this.steps.get(pick.device) ?? 4 * MiB
          const n = Math.min(step, end - pos)
          const t0 = performance.now()
          await dev.discard(pos, n)
          const ms = performance.now() - t0
          this.steps.set(pick.device, nextStep(step, n, ms))
          pos += n
          // a block device has no inode lock for a discard to hold: no rests there
          if (ms >= 1 && !current.waited && d.kind === 'file') await new Promise((r) => setTimeout(r, IDLE_FACTOR * ms))
        }
        if (pos < end) return // still dirty: the next start (or pass) scrubs it
        await dev.syncP()
        ok = true
      } catch (e) {
        this.backoff.set(pick.device, Date.now() + 30_000)
        log(
          `scrubbing device ${d?.name ?? `#${pick.device}`} [${pick.pstart}, +${pick.length}) failed: ${(e as Error).message}; retrying in 30 s`,
        )
        setTimeout(() => this.kick(), 30_000).unref()
      } finally {
        this.current = null
        finish()
      }
      if (!ok) continue
      await this.state.lock.run(async () => {
        if (!this.state.devices.has(pick.device)) return
        // only what is still free and dirty: space taken meanwhile (a copy on write, a move) keeps its rows
        const still = this.state.alloc.dirty.overlap(pick.device, pick.pstart, pick.pstart + pick.length)
        await this.state.db.tx(async () => {
          for (const r of still) await trimDirty(this.state, pick.device, r.start, r.end)
        })
        for (const r of still) this.state.alloc.markClean(pick.device, r.start, r.end)
      })
    }
  }

  /** Under the lock: the next dirty chunk to scrub, or null. */
  private next(): Span | null {
    const now = Date.now()
    for (const device of this.state.alloc.dirty.devices()) {
      if ((this.backoff.get(device) ?? 0) > now) continue
      const r = this.state.alloc.dirty.view(device)[0]
      if (r) return { device, pstart: r.start, length: Math.min(SCRUB_CHUNK, r.end - r.start) }
    }
    return null
  }
}
