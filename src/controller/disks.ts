// disk.create / disk.delete / disk.list / disk.map / extent.set.
// Each mutation: plan in memory → commit to SQLite → apply → push to agents,
// all under the state lock. Bad requests throw before anything is committed.
// disk.create --zero zeroes the planned space between plan and commit, outside
// the lock: the units are reserved in the allocator and the name is held in
// `creating`, so faults and other changes go on while a large disk is zeroed.

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { DiskInfo, DiskMap } from '../protocol/messages'
import { formatSize, roundUp } from '../size'
import { Flag, NO_DEVICE, STATE_FLAGS, type StateName } from '../table/table'
import { checkName, type Ctx } from './context'
import { log } from './log'
import { isEmpty } from './state'
import { zeroFill } from './zerofill'

/** Disks being zeroed before their commit (name → devices they hold reserved units on). */
const creating = new Map<string, Set<number>>()

/** Whether a --zero create is writing to this device now (device remove must refuse). */
export function zeroingOn(device: number): boolean {
  for (const ids of creating.values()) if (ids.has(device)) return true
  return false
}

function checkSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw new VstorError('BAD_SIZE', `bad disk size ${String(size)}: give a whole number of bytes above 0`)
  }
  return size
}

/** `conn`: the requesting connection, which gets the progress notes of --zero. */
export async function diskCreate(
  ctx: Ctx,
  params: { name: string; size: number; devices?: string[]; thin?: boolean; zero?: boolean },
  conn?: Connection,
): Promise<DiskInfo> {
  const { state, agents } = ctx
  const name = checkName(params.name, 'disk')
  const size = roundUp(checkSize(params.size), UNIT)
  if (params.zero && params.thin) throw new VstorError('BAD_ARGUMENT', '--zero is for thick disks; thin disks read zeros until written')
  const planned = await state.lock.run(async () => {
    if (state.disks.has(name) || creating.has(name)) throw new VstorError('EXISTS', `a disk named '${name}' exists already`)
    if (params.thin) return [{ vstart: 0, length: size, device: NO_DEVICE, pstart: 0, flags: Flag.Zero }]
    const pieces = state.alloc.allocate(size, state.allocatable(params.devices))
    let v = 0
    const extents = pieces.map((p) => {
      const e = { vstart: v, length: p.length, device: p.device, pstart: p.pstart, flags: 0 }
      v += p.length
      return e
    })
    if (params.zero) {
      state.alloc.reserve(extents) // held while zeroing outside the lock
      creating.set(name, new Set(extents.map((e) => e.device)))
    }
    return extents
  })
  if (params.zero) {
    try {
      const zeroing = planned.map((e) => {
        const d = state.devices.get(e.device)
        if (!d) throw new VstorError('INTERNAL', `device #${e.device} has free space but no record`)
        return { device: d.name, path: d.path, pstart: e.pstart, length: e.length }
      })
      await zeroFill(zeroing, (done, total) => conn?.notify('progress', { op: 'zero', done, total }))
    } catch (e) {
      await state.lock.run(async () => {
        state.alloc.release(planned)
        creating.delete(name)
      })
      throw e
    }
  }
  return state.lock.run(async () => {
    if (params.zero) {
      state.alloc.release(planned) // createDisk reserves them again, for good
      creating.delete(name)
    }
    const extents = planned
    const disk = await state.createDisk(name, size, !!params.thin, extents)
    const rounded = size !== params.size ? ` (rounded up from ${params.size} bytes to whole 1 MiB units)` : ''
    log(
      `disk ${name} created: ${formatSize(size)}${rounded}, ${params.thin ? 'thin' : `thick in ${extents.length} extent(s)`}${params.zero ? ', zeroed' : ''}, generation ${state.generation}`,
    )
    await agents.pushDiskAdd(disk, state.generation)
    return state.diskInfo(disk, [])
  })
}

export async function diskDelete(ctx: Ctx, params: { name: string; force?: boolean }): Promise<DiskInfo> {
  const { state, agents } = ctx
  return state.lock.run(async () => {
    const disk = state.disk(params.name)
    const openBy = agents.openBy(disk.name)
    if (openBy.length > 0 && !params.force) {
      throw new VstorError('DISK_OPEN', `disk '${disk.name}' is open on agent(s) ${openBy.join(', ')}; close it there or use --force`)
    }
    const info = state.diskInfo(disk, openBy)
    const gen = await state.deleteDisk(disk)
    log(`disk ${disk.name} deleted${openBy.length ? ` (forced while open on ${openBy.join(', ')})` : ''}, generation ${gen}`)
    await agents.pushDiskRemove(disk.name, gen)
    return info
  })
}

export function diskList(ctx: Ctx): DiskInfo[] {
  return [...ctx.state.disks.values()].map((d) => ctx.state.diskInfo(d, ctx.agents.openBy(d.name)))
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

/** Set/clear entry states over a UNIT-aligned range; setting zero discards (releases units). */
export async function extentSet(
  ctx: Ctx,
  params: { name: string; offset: number; length: number; set: StateName[]; clear: StateName[] },
): Promise<DiskMap> {
  const { state, agents } = ctx
  const set = mask(params.set, 'set')
  const clear = mask(params.clear, 'clear')
  if (set === 0 && clear === 0) throw new VstorError('BAD_ARGUMENT', 'give at least one state to set or clear')
  if (set & clear) throw new VstorError('BAD_ARGUMENT', 'a state cannot be both set and cleared')
  return state.lock.run(async () => {
    const disk = state.disk(params.name)
    const { offset, length } = params
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
    if (isEmpty(change)) return state.diskMap(disk)
    const gen = await state.commitChange(disk, change)
    log(`disk ${disk.name}: extent set [${offset}, ${end}) set=${set} clear=${clear}, generation ${gen}`)
    await agents.pushUpdate(disk, change, gen)
    return state.diskMap(disk)
  })
}
