// disk.create / disk.delete / disk.list / disk.map / extent.set.
//
// Invariants:
//   * under the lock only plan → commit → apply → enqueue; zeroing and acks
//     happen outside it (space taken from the pool and the name held in
//     `creating` meanwhile), so a slow device or agent never stalls others;
//   * a thick disk maps only space that reads zeros: clean space as it is,
//     dirty space zeroed before the commit (so no stale bytes, and no full
//     wipe of a 1 TiB disk unless --zero asks for it);
//   * a delete is refused while any known agent, connected or not, reports the
//     disk open (unless --force); its space is quarantined until every known
//     agent applied the delete;
//   * extent set completes when every known agent applied it, else it fails
//     naming the agents that did not (the change itself stays committed).

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { DiskInfo, DiskMap } from '../protocol/messages'
import { formatSize, roundUp } from '../size'
import { Flag, NO_DEVICE, STATE_FLAGS, type Extent, type StateName } from '../table/table'
import type { Piece } from './allocator'
import { checkName, type Ctx } from './context'
import { log } from './log'
import { trimDirty } from './space'
import { isEmpty, type DiskRec } from './state'
import { zeroPieces } from './zerofill'

/** Names of disks being created (space zeroed before the commit). */
const creating = new Set<string>()

export function checkSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw new VstorError('BAD_SIZE', `bad disk size ${String(size)}: give a whole number of bytes above 0`)
  }
  return size
}

/** Extents mapping [from, from + total of pieces) onto the pieces in order. */
export function extentsOn(pieces: Piece[], from = 0): Extent[] {
  let v = from
  return pieces.map((p) => {
    const e = { vstart: v, length: p.length, device: p.device, pstart: p.pstart, flags: 0 }
    v += p.length
    return e
  })
}

/** Wait until the connected agents show the change (best effort: a new disk should be visible when create returns). */
export async function settle(ctx: Ctx, gen: number): Promise<void> {
  await ctx.outbox
    .acked(gen, { who: ctx.agents.connected(), timeoutMs: 5_000, what: 'showing the change' })
    .catch((e: Error) => log(e.message))
}

/** `conn`: the requesting connection, which gets progress notes while space is zeroed. */
export async function diskCreate(
  ctx: Ctx,
  params: { name: string; size: number; devices?: string[]; thin?: boolean; zero?: boolean },
  conn?: Connection,
): Promise<DiskInfo> {
  const { state } = ctx
  const name = checkName(params.name, 'disk')
  const size = roundUp(checkSize(params.size), UNIT)
  if (params.zero && params.thin) throw new VstorError('BAD_ARGUMENT', '--zero is for thick disks; thin disks read zeros until written')
  const pieces = await state.lock.run(async () => {
    if (state.disks.has(name) || creating.has(name)) throw new VstorError('EXISTS', `a disk named '${name}' exists already`)
    if (params.thin) {
      if (params.devices) state.allocatable(params.devices) // names checked now, used at first writes
      return []
    }
    const p = state.alloc.allocate(size, state.allocatable(params.devices))
    state.alloc.take(p)
    creating.add(name)
    return p
  })
  if (!params.thin) {
    const toZero = params.zero ? pieces : pieces.filter((p) => p.dirty)
    try {
      await zeroPieces(ctx, toZero, (done, total) => conn?.notify('progress', { op: 'zero', done, total }))
    } catch (e) {
      await state.lock.run(async () => {
        state.alloc.give(
          pieces.filter((p) => state.devices.has(p.device)),
          true,
        )
        creating.delete(name)
      })
      throw e
    }
  }
  const { info, gen } = await state.lock.run(async () => {
    creating.delete(name)
    const extents = params.thin ? [{ vstart: 0, length: size, device: NO_DEVICE, pstart: 0, flags: Flag.Zero }] : extentsOn(pieces)
    const dirty = pieces.filter((p) => p.dirty)
    // a disk made with --device keeps taking space (thin first writes, growth) from those devices only
    const devices = params.devices?.length ? params.devices.map((n) => state.deviceByName(n).id) : null
    const disk = await state
      .createDisk(name, size, !!params.thin, extents, {
        devices,
        extra: async () => {
          for (const p of dirty) await trimDirty(state, p.device, p.pstart, p.pstart + p.length)
        },
      })
      .catch((e: Error) => {
        state.alloc.give(pieces, false)
        throw e
      })
    const rounded = size !== params.size ? ` (rounded up from ${params.size} bytes to whole 1 MiB units)` : ''
    log(
      `disk ${name} created: ${formatSize(size)}${rounded}, ${params.thin ? 'thin' : `thick in ${extents.length} extent(s)`}${params.zero ? ', zeroed' : ''}, generation ${state.generation}`,
    )
    ctx.outbox.diskAdd(disk, state.generation)
    return { info: state.diskInfo(disk, []), gen: state.generation }
  })
  await settle(ctx, gen)
  return info
}

export async function diskDelete(ctx: Ctx, params: { name: string; force?: boolean }): Promise<DiskInfo> {
  const { state, agents } = ctx
  const { info, gen } = await state.lock.run(async () => {
    const disk = state.disk(params.name)
    const openBy = agents.openBy(disk.name)
    if (openBy.length > 0 && !params.force) {
      throw new VstorError(
        'DISK_OPEN',
        `disk '${disk.name}' is open on agent(s) ${openBy.map((a) => agents.describe(a)).join(', ')}: close it there ` +
          '(a disconnected agent counts until it comes back or `vstor agent forget ID`), or use --force',
      )
    }
    const info = state.diskInfo(
      disk,
      openBy.map((a) => a.id),
    )
    const gen = await state.deleteDisk(disk)
    log(
      `disk ${disk.name} deleted${openBy.length ? ` (forced while open on ${openBy.map((a) => a.id).join(', ')})` : ''}, generation ${gen}`,
    )
    ctx.outbox.diskRemove(disk, gen)
    return { info, gen }
  })
  // Its space is reusable once every agent applied the delete; wait for that a little so the pool shows it.
  await ctx.outbox
    .acked(gen, { timeoutMs: Math.min(ctx.agentTimeoutMs, 5_000), what: `freeing the space of disk '${info.name}'` })
    .catch((e: Error) => log(`${e.message}; its space stays quarantined until then`))
  await ctx.space.releaseNow()
  return info
}

export function diskList(ctx: Ctx): DiskInfo[] {
  return [...ctx.state.disks.values()].map((d) =>
    ctx.state.diskInfo(
      d,
      ctx.agents.openBy(d.name).map((a) => a.id),
    ),
  )
}

export function diskMap(ctx: Ctx, params: { name: string }): DiskMap {
  return ctx.state.diskMap(ctx.state.disk(params.name))
}

function mask(names: unknown, what: string): number {
  if (names === undefined) return 0
  if (!Array.isArray(names)) throw new VstorError('BAD_ARGUMENT', `${what} must be a list of states`)
  let m = 0
  for (const n of names) {
    const f = STATE_FLAGS[n as StateName]
    if (f === undefined) throw new VstorError('BAD_ARGUMENT', `unknown state '${String(n)}': use invalid, no-write, zero or error`)
    m |= f
  }
  return m
}

/** A UNIT-aligned range inside the disk, or BAD_ARGUMENT saying what is wrong. */
export function checkRange(disk: DiskRec, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length <= 0 ||
    offset % UNIT !== 0 ||
    length % UNIT !== 0 ||
    offset + length > disk.size
  ) {
    throw new VstorError(
      'BAD_ARGUMENT',
      `bad range offset ${offset} length ${length}: both must be multiples of 1 MiB (${UNIT}), length > 0, and the range inside the disk (${disk.size} bytes)`,
    )
  }
}

/** Set/clear entry states over a UNIT-aligned range; setting zero discards (the units go to quarantine). */
export async function extentSet(
  ctx: Ctx,
  params: { name: string; offset: number; length: number; set: StateName[]; clear: StateName[] },
): Promise<DiskMap> {
  const { state } = ctx
  const set = mask(params.set, 'set')
  const clear = mask(params.clear, 'clear')
  if (set === 0 && clear === 0) throw new VstorError('BAD_ARGUMENT', 'give at least one state to set or clear')
  if (set & clear) throw new VstorError('BAD_ARGUMENT', 'a state cannot be both set and cleared')
  const { gen, name } = await state.lock.run(async () => {
    const disk = state.disk(params.name)
    if (disk.readonly && clear & Flag.NoWrite) throw new VstorError('READ_ONLY', `disk '${disk.name}' is a read-only snapshot`)
    const { offset, length } = params
    checkRange(disk, offset, length)
    const end = offset + length
    const extents = disk.table.slice(offset, end).map((e) => {
      let flags = (e.flags | set) & ~clear
      let { device, pstart } = e
      if (flags & Flag.Zero) {
        device = NO_DEVICE
        pstart = 0
      }
      if (device === NO_DEVICE && (flags & (Flag.Zero | Flag.Invalid | Flag.Error)) === 0) flags |= Flag.Invalid
      return { vstart: e.vstart, length: e.length, device, pstart, flags }
    })
    const change = disk.table.plan(offset, end, extents)
    if (isEmpty(change)) return { gen: 0, name: disk.name }
    const gen = await state.commitChange(disk, change)
    log(`disk ${disk.name}: extent set [${offset}, ${end}) set=${set} clear=${clear}, generation ${gen}`)
    ctx.outbox.update(disk, change, gen)
    return { gen, name: disk.name }
  })
  if (gen > 0) {
    await ctx.outbox.acked(gen, { timeoutMs: ctx.agentTimeoutMs, what: `extent set on disk '${name}'` })
    await ctx.space.releaseNow()
  }
  return state.diskMap(state.disk(name))
}
