// Parent side of writer.ts: spawn a writer child, feed its lines into a
// Ledger as they arrive, and read whole disks back for Ledger.verify.
// Also the figures the suite prints (and `npm run torture` sums up).
//
// Invariants: the ledger is only ever updated from the writer's own lines,
// in order, so it never claims more than the writer saw return; every
// writer is registered with the instance, so teardown kills a stuck one.

import fs from 'node:fs'
import path from 'node:path'
import type { Instance } from '../helpers/instance'
import { Ledger, type Verdict } from './blocks'
import type { WriterArgs } from './writer'

export interface WriterRun {
  /** Writes acked so far by this writer. */
  acked(): number
  /** Failures seen (write or fsync), with their errno names. */
  errors: string[]
  /** Resolves with the exit code once the writer is gone and its output applied. */
  done: Promise<number>
}

const WRITER = path.join(__dirname, 'writer.js')

/** onAck runs after each acked write (e.g. to kill something at the n-th). */
export function startWriter(v: Instance, ledger: Ledger, args: Omit<WriterArgs, 'tag' | 'size'>, onAck?: () => void): WriterRun {
  const full: WriterArgs = { ...args, tag: ledger.tag, size: ledger.size }
  const bg = v.background(process.execPath, [WRITER, JSON.stringify(full)])
  let acked = 0
  const errors: string[] = []
  let rest = ''
  const line = (l: string): void => {
    const [k, a, b, c] = l.split(' ')
    const off = Number(a)
    const seq = Number(b)
    if (k === 'i') ledger.issued(off, seq)
    else if (k === 'w') {
      ledger.acked(off, seq)
      acked++
      onAck?.()
    } else if (k === 'e') {
      ledger.failedWrite(off, seq)
      errors.push(`write ${off}: ${c}`)
    } else if (k === 'f') ledger.synced()
    else if (k === 'F') errors.push(`fsync: ${a}`)
  }
  bg.child.stdout?.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString()
    const lines = text.split('\n')
    rest = lines.pop() ?? ''
    for (const l of lines) if (l) line(l)
  })
  const done = bg.done.then((r) => {
    if (rest) line(rest)
    if (r.code !== 0) errors.push(`writer exited ${r.code}: ${r.stderr.slice(-500)}`)
    return r.code
  })
  return { acked: () => acked, errors, done }
}

/** The whole image, read through the mount (async: the agent is another process). */
export async function readImage(image: string, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size)
  const fh = await fs.promises.open(image, 'r')
  try {
    for (let at = 0; at < size;) {
      const { bytesRead } = await fh.read(buf, at, Math.min(4 * 2 ** 20, size - at), at)
      if (bytesRead === 0) break
      at += bytesRead
    }
  } finally {
    await fh.close()
  }
  return buf
}

/** Read the disk and check it against its ledger. */
export async function verifyDisk(v: Instance, name: string, ledger: Ledger): Promise<Verdict> {
  return ledger.verify(await readImage(v.image(name), ledger.size))
}

export interface Figures {
  test: string
  cycles: number
  writes: number
  fsyncs: number
  failedWrites: number
  staleBytes: number
  lostFsynced: number
  lostAcked: number
  [k: string]: string | number
}

export function figures(test: string): Figures {
  return { test, cycles: 0, writes: 0, fsyncs: 0, failedWrites: 0, staleBytes: 0, lostFsynced: 0, lostAcked: 0 }
}

export function addVerdict(f: Figures, v: Verdict): void {
  f.staleBytes += v.staleBytes
  f.lostFsynced += v.lostDurable
  f.lostAcked += v.lostAcked
}

/** Print the figures as a test diagnostic line and, under torture, append them to $VSTOR_FIGURES. */
export function report(t: { diagnostic(s: string): void }, f: Figures): void {
  t.diagnostic(`figures ${JSON.stringify(f)}`)
  const out = process.env.VSTOR_FIGURES
  if (out) fs.appendFileSync(out, JSON.stringify(f) + '\n')
}

/** How many cycles: `normal` in npm test, `torture` under VSTOR_TORTURE=1. */
export function scale(normal: number, torture: number): number {
  return process.env.VSTOR_TORTURE === '1' ? torture : normal
}
