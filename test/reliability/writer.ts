// A writer child for the reliability tests (not a test itself): writes
// self-describing blocks (blocks.ts) at random 4 KiB slots of an image and
// fsyncs now and then, reporting each step on stdout as it happens.
//
// Invariant: a line is printed only after the call it reports returned
// (stdout is a pipe, written synchronously on Linux), so the parent's ledger
// never counts a write acked, or a fsync done, that was not; an `i` line
// precedes every write, so a write in flight when something dies is known.
//
// Usage: node writer.js '{"image":…,"tag":1,"size":…,"count":100,"seqBase":0,"seed":1,"fsyncEvery":8}'
// Lines: `i OFF SEQ` issuing, `w OFF SEQ` acked, `e OFF SEQ CODE` failed,
//        `f` fsync returned, `F CODE` fsync failed, `done`.

import fs from 'node:fs'
import { BLOCK, makeBlock } from './blocks'

export interface WriterArgs {
  image: string
  tag: number
  size: number
  count: number
  seqBase: number
  seed: number
  fsyncEvery: number
  /** Stop after this many failures in a row (default: never). */
  maxErrors?: number
  /** Write only inside these units (1 MiB each), default every unit of the disk. */
  units?: number[]
}

/** xorshift32: deterministic per seed, so a failing cycle can be replayed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
}

function main(a: WriterArgs): void {
  const out = (s: string): void => void fs.writeSync(1, s + '\n')
  const next = rng(a.seed)
  const perUnit = 2 ** 20 / BLOCK
  const units = a.units ?? Array.from({ length: Math.floor(a.size / 2 ** 20) }, (_, i) => i)
  const fd = fs.openSync(a.image, 'r+')
  let errors = 0
  let sinceSync = 0
  const fsync = (): void => {
    try {
      fs.fsyncSync(fd)
      out('f')
    } catch (e) {
      out(`F ${(e as NodeJS.ErrnoException).code ?? 'EIO'}`)
    }
    sinceSync = 0
  }
  for (let i = 0; i < a.count; i++) {
    const unit = units[Math.floor(next() * units.length)] ?? 0
    const off = unit * 2 ** 20 + Math.floor(next() * perUnit) * BLOCK
    const seq = a.seqBase + i + 1
    out(`i ${off} ${seq}`)
    try {
      fs.writeSync(fd, makeBlock(a.tag, off, seq), 0, BLOCK, off)
      out(`w ${off} ${seq}`)
      errors = 0
    } catch (e) {
      out(`e ${off} ${seq} ${(e as NodeJS.ErrnoException).code ?? 'EIO'}`)
      if (a.maxErrors !== undefined && ++errors >= a.maxErrors) break
    }
    if (++sinceSync >= a.fsyncEvery) fsync()
  }
  fsync()
  try {
    fs.closeSync(fd)
  } catch {
    // a dead mount: nothing to close
  }
  out('done')
}

if (require.main === module) main(JSON.parse(process.argv[2] ?? '{}') as WriterArgs)
