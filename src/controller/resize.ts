// disk.resize: grow online (thin grows with zero extents, thick takes space
// that reads zeros), shrink only with --shrink and while no agent has the
// disk open.
//
// Invariants: a resize completes only when every known agent applied it
// (else it fails naming them; the new size stays committed); the table is
// replaced whole (table.resize) so open fds keep working at the new size;
// space a shrink frees is quarantined like any other freed space.

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { DiskInfo } from '../protocol/messages'
import { formatSize, roundUp } from '../size'
import { Flag, NO_DEVICE, Table, type Extent } from '../table/table'
import type { Piece } from './allocator'
import type { Ctx } from './context'
import { checkSize, extentsOn } from './disks'
import { log } from './log'
import { trimDirty } from './space'
import type { DiskRec } from './state'
import { zeroPieces } from './zerofill'

export async function diskResize(ctx: Ctx, params: { name: string; size: number; shrink?: boolean }, conn?: Connection): Promise<DiskInfo> {
  const { state } = ctx
  const size = roundUp(checkSize(params.size), UNIT)
  const plan = await state.lock.run(async () => {
    const disk = state.disk(params.name)
    if (disk.readonly) throw new VstorError('READ_ONLY', `disk '${disk.name}' is a read-only snapshot; it cannot change size`)
    if (size === disk.size) return null
    if (size < disk.size) {
      if (!params.shrink) {
        throw new VstorError(
          'BAD_SIZE',
          `${formatSize(size)} is smaller than disk '${disk.name}' (${formatSize(disk.size)}): shrinking loses data; pass --shrink if you mean it`,
        )
      }
      const open = ctx.agents.openBy(disk.name)
      if (open.length)
        throw new VstorError(
          'DISK_OPEN',
          `disk '${disk.name}' is open on agent(s) ${open.map((a) => ctx.agents.describe(a)).join(', ')}: close it before shrinking`,
        )
      return { disk, pieces: [] as Piece[] }
    }
    if (disk.thin) return { disk, pieces: [] as Piece[] }
    const pieces = state.alloc.allocate(size - disk.size, state.poolFor(disk))
    state.alloc.take(pieces)
    return { disk, pieces }
  })
  if (!plan)
    return state.diskInfo(
      state.disk(params.name),
      ctx.agents.openBy(params.name).map((a) => a.id),
    )
  try {
    await zeroPieces(
      ctx,
      plan.pieces.filter((p) => p.dirty),
      (done, total) => conn?.notify('progress', { op: 'zero', done, total }),
    )
  } catch (e) {
    await state.lock.run(async () => state.alloc.give(plan.pieces, true))
    throw e
  }
  const { disk, gen } = await state.lock.run(async () => {
    const disk = state.disks.get(params.name)
    if (!disk || disk.uid !== plan.disk.uid || disk.size !== plan.disk.size) {
      state.alloc.give(plan.pieces, true)
      throw new VstorError('EXISTS', `disk '${params.name}' changed while it was being resized; try again`)
    }
    return { disk, gen: await commitResize(ctx, disk, size, plan.pieces) }
  })
  await ctx.outbox.acked(gen, { timeoutMs: ctx.agentTimeoutMs, what: `resizing disk '${disk.name}'` })
  await ctx.space.releaseNow()
  return state.diskInfo(
    disk,
    ctx.agents.openBy(disk.name).map((a) => a.id),
  )
}

/** Under the lock: the new table (tail added or cut), committed; freed space quarantined; pushed whole. */
async function commitResize(ctx: Ctx, disk: DiskRec, size: number, pieces: Piece[]): Promise<number> {
  const { state } = ctx
  const old = disk.size
  let extents: Extent[]
  if (size > old) {
    const tail: Extent[] = disk.thin
      ? [{ vstart: old, length: size - old, device: NO_DEVICE, pstart: 0, flags: Flag.Zero }]
      : extentsOn(pieces, old)
    extents = [...disk.table.all(), ...tail]
  } else {
    extents = disk.table.slice(0, size)
  }
  const refs = state.unref(size < old ? disk.table.slice(size, old) : [])
  const freed = refs.freed
  const table = new Table(size, extents, disk.table.generation)
  let gen = 0
  await state.db.tx(async () => {
    await state.db.run('DELETE FROM extents WHERE disk_id = ?', [disk.id])
    await state.insertExtents(disk.id, table.all())
    gen = await state.bumpGeneration()
    await state.db.run('UPDATE disks SET size = ?, generation = ? WHERE id = ?', [size, gen, disk.id])
    await state.insertQuarantine(freed, gen)
    await state.refs.persist(state.db, refs)
    for (const p of pieces.filter((x) => x.dirty)) await trimDirty(state, p.device, p.pstart, p.pstart + p.length)
  })
  table.generation = gen
  state.refs.apply(refs)
  disk.table = table
  disk.size = size
  state.applyQuarantine(freed, gen)
  state.generation = gen
  state.durable = gen
  ctx.outbox.diskReplace(disk, gen)
  log(`disk ${disk.name} resized from ${formatSize(old)} to ${formatSize(size)}, generation ${gen}`)
  return gen
}
