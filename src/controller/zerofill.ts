// Zeroing space before a disk maps it (thick create of dirty space, --zero,
// resize), through the device layer (fallocate ZERO_RANGE, BLKZEROOUT or zero
// writes: see src/device), off the controller's event loop.
//
// Invariants: every byte of every piece reads zeros and is fdatasync'ed before
// zeroPieces resolves; on any failure it throws a VstorError naming the device
// and offset, and the caller commits nothing. Progress is reported at most once
// per `everyMs`, plus always at the start and when done === total.

import { VstorError } from '../errors'
import { MiB } from '../size'
import type { Piece } from './allocator'
import type { Ctx } from './context'

/** Zeroed per device call, so progress moves and a huge disk is not one syscall. */
export const ZERO_CHUNK = 64 * MiB

type Report = (done: number, total: number) => void

export async function zeroPieces(
  ctx: Pick<Ctx, 'state' | 'io' | 'space'>,
  pieces: Piece[],
  report: Report = () => {},
  everyMs = 100,
): Promise<void> {
  const total = pieces.reduce((s, p) => s + p.length, 0)
  if (total === 0) return
  await ctx.space.waitScrub(pieces)
  let done = 0
  let last = Date.now()
  report(0, total)
  const synced = new Set<number>()
  for (const p of pieces) {
    const d = ctx.state.devices.get(p.device)
    if (!d) throw new VstorError('INTERNAL', `device #${p.device} left the pool while space on it was being zeroed`)
    const fail = (at: number, e: unknown): VstorError => {
      const err = e as NodeJS.ErrnoException
      return new VstorError(
        err.code === 'ENOSPC' ? 'NO_SPACE' : 'DEVICE_INVALID',
        `zeroing device '${d.name}' (${d.path}) at offset ${at} failed: ${err.code ?? ''} ${err.message}; ` +
          (err.code === 'ENOSPC' ? 'the file system holding it is full: free space there' : 'check the device (`vstor device check`)') +
          '; nothing was changed',
      )
    }
    const dev = await ctx.io.get(d)
    for (let pos = p.pstart; pos < p.pstart + p.length;) {
      const n = Math.min(ZERO_CHUNK, p.pstart + p.length - pos)
      await dev.zero(pos, n).catch((e: unknown) => {
        throw fail(pos, e)
      })
      pos += n
      done += n
      const now = Date.now()
      if (done === total || now - last >= everyMs) {
        last = now
        report(done, total)
      }
    }
    if (!synced.has(d.id)) {
      synced.add(d.id)
      await dev.syncP().catch((e: unknown) => {
        throw fail(p.pstart, e)
      })
    }
  }
}
