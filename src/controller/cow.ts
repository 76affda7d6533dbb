// Copy on write, and discards that give units back (zero reclaim, fallocate).
//
// A write into a Shared extent of a writable disk faults `write-protected`:
//   * units whose every byte still has other references are copied: new units
//     taken from the pool (dirty ones need no zeroing: the copy overwrites them
//     whole), the old contents copied and fdatasync'ed, then the writer's disk
//     remapped without Shared (one reference less on the old units), committed
//     lazily, pushed; the write retries once its agent applied it;
//   * units only this disk maps any more (the other references were deleted)
//     just lose the Shared flag: no copy.
// An admin's NoWrite wins over both: EROFS.
//
// Invariants: the lock covers plan → commit → apply → enqueue; copies happen
// outside it with the range busy, so concurrent faults on one unit copy it
// once and faults elsewhere never wait; the copy is durable before the
// mapping that points at it commits (a crash shows the old contents, never
// garbage), and its new units are recorded dirty before the copy starts (a
// crash in between leaves them to the scrubber, not as clean space holding
// old bytes); the remap's commit trims those rows again; a discard answers only once every known agent applied it, so no
// write an agent acknowledged afterwards can land in the freed units.

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { DiscardReply, FaultReply } from '../protocol/messages'
import { Flag, NO_DEVICE, type Extent } from '../table/table'
import type { Piece } from './allocator'
import type { AgentRec } from './agents'
import { busyAt, markBusy, type Ctx } from './context'
import { readFresh } from './devio'
import { log } from './log'
import { trimDirty } from './space'
import { isEmpty, type DiskRec } from './state'

/** Whole units around [offset, offset + length), clipped to the disk. */
function units(disk: DiskRec, offset: number, length: number): [number, number] {
  if (offset >= disk.size) throw new VstorError('BAD_ARGUMENT', `offset ${offset} is outside disk '${disk.name}' (${disk.size} bytes)`)
  return [Math.floor(offset / UNIT) * UNIT, Math.min(disk.size, Math.ceil((offset + Math.max(length, 1)) / UNIT) * UNIT)]
}

type CowPlan =
  | { kind: 'wait'; done: Promise<void> }
  | { kind: 'reply'; reply: FaultReply }
  | { kind: 'ack'; gen: number }
  | { kind: 'copy'; disk: DiskRec; start: number; end: number; old: Extent[]; pieces: Piece[]; finish: () => void }

/** A write-protected fault: wait for a busy range (move, copy), deny an admin's NoWrite, copy shared units, retry. */
export async function writeProtected(
  ctx: Ctx,
  f: { disk: string; offset: number; length: number },
  agent: AgentRec,
  retry: (gen: number) => Promise<FaultReply>,
): Promise<FaultReply> {
  const { state } = ctx
  for (;;) {
    const plan = await state.lock.run(async (): Promise<CowPlan> => {
      const disk = state.disk(f.disk)
      const [start, end] = units(disk, f.offset, f.length)
      const busy = busyAt(ctx, disk.uid, start, end)
      if (busy) return { kind: 'wait', done: busy.done }
      const old = disk.table.slice(start, end)
      if (disk.readonly || old.some((e) => e.flags & Flag.NoWrite)) {
        log(`fault write-protected from ${agent.id}: disk ${f.disk} [${f.offset}, +${f.length}), denied`)
        return { kind: 'reply', reply: { action: 'deny', reason: 'write-protected', errno: 'EROFS' } }
      }
      const shared = old.filter((e) => e.flags & Flag.Shared)
      if (shared.length === 0) return { kind: 'ack', gen: disk.table.generation } // the agent's copy was behind
      const copyBytes = shared
        .filter((e) => state.refs.sharedBytes({ device: e.device, pstart: e.pstart, length: e.length }) > 0)
        .reduce((n, e) => n + e.length, 0)
      if (copyBytes === 0) {
        // every other reference is gone: the units are this disk's alone now
        const change = disk.table.plan(
          start,
          end,
          old.map((e) => ({ ...e, flags: e.flags & ~Flag.Shared })),
        )
        const gen = await state.commitChange(disk, change, { durable: false })
        if (!isEmpty(change)) ctx.outbox.update(disk, change, gen, { lazy: true })
        return { kind: 'ack', gen }
      }
      const pieces = state.alloc.allocate(copyBytes, state.poolFor(disk, agent.missing))
      state.alloc.take(pieces)
      return { kind: 'copy', disk, start, end, old, pieces, finish: markBusy(ctx, disk.uid, start, end) }
    })
    if (plan.kind === 'wait') {
      await plan.done
      continue
    }
    if (plan.kind === 'reply') return plan.reply
    if (plan.kind === 'ack') return retry(plan.gen)
    try {
      const gen = await copyOnWrite(ctx, plan)
      if (gen !== null) return retry(gen)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      log(`copy on write for ${agent.id} on disk ${f.disk} [${plan.start}, ${plan.end}) failed: ${(e as Error).message}`)
      return { action: 'fail', reason: (e as Error).message, errno: code === 'ENOSPC' ? 'ENOSPC' : 'EIO' }
    } finally {
      plan.finish()
    }
  }
}

/** Copy the shared units to the new pieces, then remap; null when the range changed meanwhile (ask again). */
async function copyOnWrite(ctx: Ctx, p: Extract<CowPlan, { kind: 'copy' }>): Promise<number | null> {
  const { state } = ctx
  const moved = remap(p.old, p.pieces, (e) => state.refs.sharedBytes({ device: e.device, pstart: e.pstart, length: e.length }) > 0)
  try {
    await ctx.space.waitScrub(p.pieces)
    await recordDirty(ctx, p.pieces)
    const buf = Buffer.allocUnsafe(UNIT)
    const synced = new Set<number>()
    for (const [from, to] of moved) {
      const src = await ctx.io.get(state.devices.get(from.device)!)
      const dst = await ctx.io.get(state.devices.get(to.device)!)
      for (let done = 0; done < from.length; done += UNIT) {
        const b = buf.subarray(0, Math.min(UNIT, from.length - done))
        await readFresh(src, b, from.pstart + done)
        await dst.writeAt(b, to.pstart + done)
      }
      if (!synced.has(to.device)) synced.add(to.device)
    }
    for (const id of synced) await (await ctx.io.get(state.devices.get(id)!)).syncP()
  } catch (e) {
    await state.lock.run(async () =>
      state.alloc.give(
        p.pieces.filter((x) => state.devices.has(x.device)),
        true,
      ),
    )
    throw e
  }
  return state.lock.run(async () => {
    const disk = state.disks.get(p.disk.name)
    const now = disk?.uid === p.disk.uid ? disk.table.slice(p.start, p.end) : null
    if (!disk || !now || JSON.stringify(now) !== JSON.stringify(p.old)) {
      state.alloc.give(
        p.pieces.filter((x) => state.devices.has(x.device)),
        true,
      )
      return null
    }
    const next = p.old.flatMap((e) => {
      const m = moved.filter(([from]) => from.vstart >= e.vstart && from.vstart < e.vstart + e.length)
      if (m.length === 0) return [{ ...e, flags: e.flags & ~Flag.Shared }]
      return m.map(([, to]) => to)
    })
    const change = disk.table.plan(p.start, p.end, next)
    const gen = await state
      .commitChange(disk, change, {
        durable: false,
        preTaken: true,
        extra: async () => {
          for (const x of p.pieces) await trimDirty(state, x.device, x.pstart, x.pstart + x.length)
        },
      })
      .catch((e: unknown) => {
        state.alloc.give(p.pieces, true) // nothing committed: the units are free again (dirty, as their rows say)
        throw e
      })
    ctx.outbox.update(disk, change, gen, { lazy: true })
    log(`copied on write: disk ${disk.name} [${p.start}, ${p.end}), generation ${gen}`)
    return gen
  })
}

/**
 * The new units are recorded dirty (durably) before a byte is copied into them: a crash before the
 * remap commits leaves them to the scrubber, never as clean space holding another disk's bytes
 * (clean space is handed out without zeroing). The remap's commit trims the rows again.
 */
async function recordDirty(ctx: Ctx, pieces: Piece[]): Promise<void> {
  const { state } = ctx
  const clean = pieces.filter((x) => !x.dirty)
  if (clean.length === 0) return
  await state.db.tx(async () => {
    for (const x of clean) {
      await trimDirty(state, x.device, x.pstart, x.pstart + x.length)
      await state.db.queue('INSERT INTO dirty (device_id, pstart, length) VALUES (?, ?, ?)', [x.device, x.pstart, x.length])
    }
  })
}

/** Pairs (old piece still shared → its new place), spreading the shared extents over the pieces in order. */
function remap(old: Extent[], pieces: Piece[], isShared: (e: Extent) => boolean): [Extent, Extent][] {
  const left = pieces.map((x) => ({ ...x }))
  const out: [Extent, Extent][] = []
  for (const e of old) {
    if (!(e.flags & Flag.Shared) || e.device === NO_DEVICE || !isShared(e)) continue
    let v = e.vstart
    let n = e.length
    while (n > 0) {
      const x = left[0]!
      const k = Math.min(n, x.length)
      const from = { ...e, vstart: v, length: k, pstart: e.pstart + (v - e.vstart) }
      out.push([from, { vstart: v, length: k, device: x.device, pstart: x.pstart, flags: e.flags & ~Flag.Shared }])
      v += k
      n -= k
      if (k === x.length) left.shift()
      else left[0] = { ...x, pstart: x.pstart + k, length: x.length - k }
    }
  }
  return out
}

/** Whole units discarded by an agent: back to Zero on a sparse disk (answered after every agent applied it); thick disks write zeros. */
export async function discard(
  ctx: Ctx,
  p: { disk: string; uid: string; offset: number; length: number },
  agent: AgentRec,
): Promise<DiscardReply> {
  const { state } = ctx
  for (;;) {
    const r = await state.lock.run(async (): Promise<DiscardReply | number | { wait: Promise<void> }> => {
      const disk = state.disk(p.disk)
      if (disk.uid !== p.uid) throw new VstorError('NOT_FOUND', `disk '${p.disk}' was replaced; the agent must reload`)
      const start = Math.ceil(p.offset / UNIT) * UNIT
      const end = Math.min(disk.size, Math.floor((p.offset + p.length) / UNIT) * UNIT)
      if (end <= start) return { result: 'discarded' }
      if (disk.readonly) return { result: 'denied', errno: 'EROFS', reason: 'a read-only snapshot' }
      const busy = busyAt(ctx, disk.uid, start, end)
      if (busy) return { wait: busy.done }
      const old = disk.table.slice(start, end)
      if (old.some((e) => e.flags & Flag.NoWrite)) return { result: 'denied', errno: 'EROFS', reason: 'write-protected' }
      if (old.some((e) => e.flags & (Flag.Invalid | Flag.Error)))
        return { result: 'denied', errno: 'EIO', reason: 'invalid or failed range' }
      if (!(disk.thin || disk.origin !== null)) return { result: 'write-zeros' }
      const change = disk.table.plan(start, end, [{ vstart: start, length: end - start, device: NO_DEVICE, pstart: 0, flags: Flag.Zero }])
      if (isEmpty(change)) return { result: 'discarded' }
      const gen = await state.commitChange(disk, change, { durable: false })
      ctx.outbox.update(disk, change, gen, { lazy: true })
      log(`discard from ${agent.id}: disk ${disk.name} [${start}, ${end}) back to zero, generation ${gen}`)
      return gen
    })
    if (typeof r === 'number') {
      await ctx.outbox.acked(r, { timeoutMs: ctx.agentTimeoutMs, what: `discard on disk '${p.disk}'` })
      ctx.space.kick()
      return { result: 'discarded' }
    }
    if ('wait' in r) {
      await r.wait
      continue
    }
    return r
  }
}
