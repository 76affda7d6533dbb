// Writes zeros over space just planned for a thick disk, before the disk is
// committed (`disk create --zero`, like `lvcreate --zero` or qemu-img
// preallocation=full), so the disk never shows bytes a deleted disk left behind.
//
// Invariants: the caller holds the state lock and has not committed the pieces,
// so nothing else allocates, reads or writes them meanwhile; every byte of every
// piece is written (positional writes from one reused zero buffer) and each
// device is fdatasync'ed before zeroFill resolves; on any failure it throws a
// VstorError naming the device and the offset, and the caller commits nothing.
// Progress is reported at most once per `everyMs`, plus always at the start and
// when done === total.

import fs from 'node:fs/promises'
import { VstorError } from '../errors'
import { MiB } from '../size'

/** One run of bytes to zero: absolute offsets in the device's file or block device. */
export interface ZeroPiece {
  device: string // device name, for messages
  path: string
  pstart: number
  length: number
}

export const ZERO_CHUNK = 8 * MiB

type Report = (done: number, total: number) => void

function failure(piece: ZeroPiece, offset: number, what: string, e: unknown): VstorError {
  const err = e as NodeJS.ErrnoException
  const why = err.code ? `${err.code} (${err.message})` : String(err.message ?? e)
  return new VstorError(
    'DEVICE_INVALID',
    `zeroing the new disk failed: ${what} device '${piece.device}' (${piece.path}) at offset ${offset}: ${why}; ` +
      'the disk was not created: check the device, or remove it from the pool with `vstor device remove`',
  )
}

/** Zero every piece, device by device, reporting bytes done of the total. */
export async function zeroFill(pieces: ZeroPiece[], report: Report = () => {}, everyMs = 100): Promise<void> {
  const total = pieces.reduce((s, p) => s + p.length, 0)
  let done = 0
  let last = Date.now()
  report(0, total)
  const advance = (n: number) => {
    done += n
    const now = Date.now()
    if (done === total || now - last >= everyMs) {
      last = now
      report(done, total)
    }
  }
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK, Math.max(total, 1)))
  const byPath = new Map<string, ZeroPiece[]>()
  for (const p of pieces) byPath.set(p.path, [...(byPath.get(p.path) ?? []), p])
  for (const group of byPath.values()) {
    const first = group[0] as ZeroPiece
    let fh: fs.FileHandle
    try {
      fh = await fs.open(first.path, 'r+') // O_RDWR, never O_CREAT: a missing device must not become a new file
    } catch (e) {
      throw failure(first, first.pstart, 'opening', e)
    }
    try {
      for (const p of group) {
        const end = p.pstart + p.length
        let pos = p.pstart
        while (pos < end) {
          const n = Math.min(zeros.length, end - pos)
          let wrote: number
          try {
            wrote = (await fh.write(zeros, 0, n, pos)).bytesWritten
          } catch (e) {
            throw failure(p, pos, 'writing to', e)
          }
          if (wrote <= 0) throw failure(p, pos, 'writing to', new Error('the write wrote nothing (end of device?)'))
          pos += wrote
          advance(wrote)
        }
      }
      try {
        await fh.datasync()
      } catch (e) {
        throw failure(first, first.pstart, 'flushing (fdatasync)', e)
      }
    } finally {
      await fh.close().catch(() => undefined)
    }
  }
}
