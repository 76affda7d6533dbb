// Self-describing 4 KiB blocks and a ledger of what a writer was told, so a
// read of a whole disk can tell every block apart: zeros, a block this disk
// wrote here (and which write), or anything else (stale or foreign bytes).
//
// Invariants: a block carries magic, disk tag, its own disk offset and the
// write's sequence number, and the rest of it is a function of those, so a
// torn, misplaced, foreign or stale block never passes as valid; the ledger
// only counts a write acknowledged once the writer printed it after the
// write returned, and durable once an fsync returned after that.

export const BLOCK = 4096
const MAGIC = 0x57545356 // 'VSTW'

/** The bytes of write `seq` of disk `tag` at disk offset `offset`. */
export function makeBlock(tag: number, offset: number, seq: number): Buffer {
  const b = Buffer.alloc(BLOCK)
  b.writeUInt32LE(MAGIC, 0)
  b.writeUInt32LE(tag, 4)
  b.writeDoubleLE(offset, 8)
  b.writeUInt32LE(seq, 16)
  const k = (tag * 13 + seq * 31 + offset / BLOCK) & 0xff
  for (let i = 20; i < BLOCK; i++) b[i] = (k + i) & 0xff
  return b
}

export type Seen = { kind: 'zero' } | { kind: 'block'; seq: number } | { kind: 'bad'; nonzero: number; why: string }

/** Classify the block read at `offset` of disk `tag`. */
export function classify(b: Buffer, tag: number, offset: number): Seen {
  let nonzero = 0
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) nonzero++
  if (nonzero === 0) return { kind: 'zero' }
  if (b.length !== BLOCK || b.readUInt32LE(0) !== MAGIC) return { kind: 'bad', nonzero, why: 'not a block of ours' }
  const t = b.readUInt32LE(4)
  const o = b.readDoubleLE(8)
  const seq = b.readUInt32LE(16)
  if (t !== tag || o !== offset) return { kind: 'bad', nonzero, why: `a block of disk tag ${t} offset ${o}` }
  if (!makeBlock(tag, offset, seq).equals(b)) return { kind: 'bad', nonzero, why: `torn block (seq ${seq})` }
  return { kind: 'block', seq }
}

interface Slot {
  /** Every seq a writer issued here (acked or not). */
  issued: Set<number>
  acked: number
  durable: number
}

export interface Verdict {
  blocks: number
  staleBytes: number
  lostDurable: number
  lostAcked: number
  problems: string[]
}

/** What a disk's writers were told; verify() checks a full read of the disk against it. */
export class Ledger {
  private readonly slots = new Map<number, Slot>()
  /** Offsets acked since the writer's last completed fsync. */
  private unsynced = new Map<number, number>()
  writes = 0
  fsyncs = 0
  failed = 0

  constructor(
    readonly tag: number,
    readonly size: number,
  ) {}

  private slot(off: number): Slot {
    let s = this.slots.get(off)
    if (!s) this.slots.set(off, (s = { issued: new Set(), acked: 0, durable: 0 }))
    return s
  }

  issued(off: number, seq: number): void {
    this.slot(off).issued.add(seq)
  }

  acked(off: number, seq: number): void {
    const s = this.slot(off)
    s.issued.add(seq)
    s.acked = Math.max(s.acked, seq)
    this.unsynced.set(off, Math.max(this.unsynced.get(off) ?? 0, seq))
    this.writes++
  }

  failedWrite(off: number, seq: number): void {
    this.slot(off).issued.add(seq)
    this.failed++
  }

  /** An fsync returned: every write acked before it is durable. */
  synced(): void {
    for (const [off, seq] of this.unsynced) {
      const s = this.slot(off)
      s.durable = Math.max(s.durable, seq)
    }
    this.unsynced = new Map()
    this.fsyncs++
  }

  /** Check one whole-disk read. */
  verify(disk: Buffer): Verdict {
    const v: Verdict = { blocks: 0, staleBytes: 0, lostDurable: 0, lostAcked: 0, problems: [] }
    const note = (s: string): void => void (v.problems.length < 20 && v.problems.push(s))
    for (let off = 0; off + BLOCK <= Math.min(disk.length, this.size); off += BLOCK) {
      v.blocks++
      const seen = classify(disk.subarray(off, off + BLOCK), this.tag, off)
      const s = this.slots.get(off)
      if (seen.kind === 'bad') {
        v.staleBytes += seen.nonzero
        note(`offset ${off}: ${seen.nonzero} bytes not written by this disk (${seen.why})`)
        continue
      }
      if (seen.kind === 'block' && !s?.issued.has(seen.seq)) {
        v.staleBytes += BLOCK
        note(`offset ${off}: write ${seen.seq} was never issued here`)
        continue
      }
      const got = seen.kind === 'block' ? seen.seq : 0
      if (s && got < s.durable) {
        v.lostDurable++
        note(`offset ${off}: fsync'd write ${s.durable} lost (reads ${got ? `write ${got}` : 'zeros'})`)
      } else if (s && got < s.acked) v.lostAcked++
    }
    if (disk.length !== this.size) note(`read ${disk.length} bytes of a ${this.size}-byte disk`)
    return v
  }
}
