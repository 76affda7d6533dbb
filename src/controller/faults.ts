// Answers to agents' fault requests. Invariant: `retry` is sent only after
// the faulting agent acked the table.update that resolves the fault, and
// concurrent first writes into one Zero range make exactly one allocation
// (the second fault finds the range mapped under the lock and retries).

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { Fault, FaultReply } from '../protocol/messages'
import { Flag, NO_DEVICE, type Extent } from '../table/table'
import type { Ctx } from './context'
import { log } from './log'
import { isEmpty, type DiskRec } from './state'

const POLL_MS = 200

function unitRange(disk: DiskRec, offset: number, length: number): [number, number] {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset >= disk.size) {
    throw new VstorError(
      'BAD_ARGUMENT',
      `fault range offset ${offset} length ${length} is outside disk '${disk.name}' (${disk.size} bytes)`,
    )
  }
  const start = Math.floor(offset / UNIT) * UNIT
  const end = Math.min(disk.size, Math.ceil((offset + Math.max(length, 1)) / UNIT) * UNIT)
  return [start, end]
}

export async function handleFault(ctx: Ctx, f: Fault, conn: Connection): Promise<FaultReply> {
  const agent = ctx.agents.forConn(conn)
  const who = agent?.id ?? 'unknown agent'
  const where = `disk ${f.disk} [${f.offset}, +${f.length})`
  switch (f.kind) {
    case 'unmapped':
      // Nothing to map it to: the agent already failed the I/O with EIO.
      log(`fault unmapped from ${who}: ${where}, denied`)
      return { action: 'deny', reason: 'no mapping' }
    case 'write-protected':
      // No snapshots yet, so nothing could make the range writable.
      log(`fault write-protected from ${who}: ${where}, denied`)
      return { action: 'deny', reason: 'write-protected' }
    case 'unallocated':
      return unallocated(ctx, f, who)
    case 'device-error':
      return deviceError(ctx, f, who)
    default:
      throw new VstorError('BAD_REQUEST', `unknown fault kind '${String(f.kind)}'`)
  }
}

/** First write into Zero space: map whole units (clipped to the Zero parts), commit, push with zeroFill, then retry. */
async function unallocated(ctx: Ctx, f: Fault, who: string): Promise<FaultReply> {
  const { state, agents } = ctx
  const deadline = Date.now() + ctx.noSpaceTimeoutMs
  let waited = false
  while (true) {
    const r = await state.lock.run(async (): Promise<FaultReply | 'nospace'> => {
      const disk = state.disk(f.disk)
      const [start, end] = unitRange(disk, f.offset, f.length)
      const old = disk.table.slice(start, end)
      const zeroBytes = old.filter((e) => e.flags & Flag.Zero).reduce((s, e) => s + e.length, 0)
      if (zeroBytes === 0) return mappedAlready(ctx, disk, who) // another fault mapped it first
      let pieces
      try {
        pieces = state.alloc.allocate(zeroBytes, state.allocatable())
      } catch (e) {
        if (e instanceof VstorError && e.code === 'NO_SPACE') return 'nospace'
        throw e
      }
      const extents: Extent[] = []
      for (const e of old) {
        if (!(e.flags & Flag.Zero)) {
          extents.push(e)
          continue
        }
        // spread this Zero part over the pieces, in order
        let v = e.vstart
        let left = e.length
        while (left > 0) {
          const p = pieces[0] as { device: number; pstart: number; length: number }
          const take = Math.min(left, p.length)
          extents.push({ vstart: v, length: take, device: p.device, pstart: p.pstart, flags: e.flags & ~Flag.Zero })
          v += take
          left -= take
          if (take === p.length) pieces.shift()
          else pieces[0] = { device: p.device, pstart: p.pstart + take, length: p.length - take }
        }
      }
      const change = disk.table.plan(start, end, extents)
      // Lazy commit: the agent's fsync of this disk asks for metadata.sync (a barrier) before it completes.
      const gen = await state.commitChange(disk, change, undefined, { durable: false })
      log(`fault unallocated from ${who}: disk ${disk.name} [${start}, ${end}) allocated ${zeroBytes} bytes, generation ${gen}`)
      const acked = await agents.pushFreshUpdate(disk, change, gen, who)
      if (!acked.has(who)) return mappedAlready(ctx, disk, who)
      return { action: 'retry' }
    })
    if (r !== 'nospace') return r
    if (!waited) log(`pool full: fault unallocated from ${who} on disk ${f.disk} waits up to ${ctx.noSpaceTimeoutMs} ms for a device`)
    waited = true
    if (Date.now() >= deadline) {
      log(`pool full: fault unallocated from ${who} on disk ${f.disk} [${f.offset}, +${f.length}) failed: no space`)
      return { action: 'fail', reason: 'no space' }
    }
    await new Promise((res) => setTimeout(res, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))))
  }
}

/** The range is mapped: retry once the faulting agent has a table that shows it (else it would fault again at once). */
async function mappedAlready(ctx: Ctx, disk: DiskRec, who: string): Promise<FaultReply> {
  const a = ctx.agents.byId.get(who)
  if (!a || (await ctx.agents.ensure(a, disk.table.generation, 'fault retry needs the new table'))) return { action: 'retry' }
  return { action: 'fail', reason: 'the agent did not take the table change' }
}

/** A device failed under the agent: mark the range Error persistently and the device unhealthy. */
async function deviceError(ctx: Ctx, f: Fault, who: string): Promise<FaultReply> {
  const { state, agents } = ctx
  return state.lock.run(async () => {
    const disk = state.disk(f.disk)
    const [start, end] = unitRange(disk, f.offset, f.length)
    const devs = new Set<number>(f.device !== undefined ? [f.device] : [])
    for (const e of disk.table.slice(start, end)) if (f.device === undefined && e.device !== NO_DEVICE) devs.add(e.device)
    const change = disk.table.planFlags(start, end, Flag.Error, 0)
    const gen = await state.commitChange(disk, change, async () => {
      for (const id of devs) await state.db.run("UPDATE devices SET errors = errors + 1, health = 'error' WHERE id = ?", [id])
    })
    for (const id of devs) {
      const d = state.devices.get(id)
      if (d) {
        d.errors++
        d.health = 'error'
      }
    }
    const names = [...devs].map((id) => state.devices.get(id)?.name ?? `#${id}`).join(', ')
    log(
      `fault device-error from ${who}: ${where(f)} errno ${f.errno ?? '?'} on device ${names || '?'}; range [${start}, ${end}) marked error, generation ${gen}`,
    )
    if (!isEmpty(change)) await agents.pushUpdate(disk, change, gen)
    return { action: 'deny', reason: 'device error' } as FaultReply
  })
}

function where(f: Fault): string {
  return `disk ${f.disk} [${f.offset}, +${f.length})`
}
