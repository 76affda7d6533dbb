// Answers to agents' fault requests.
//
// Invariants:
//   * `retry` goes out only after the faulting agent acked a table that
//     resolves the fault (it would fault again at once otherwise);
//   * a first write into Zero space maps units that read zeros: clean space
//     as it is (its host space reserved), dirty space only after the
//     controller zeroed it; both before the mapping commits, so no agent, at
//     any moment or after any crash, maps a unit showing someone else's bytes;
//   * the lock covers plan → commit → apply → enqueue only: zeroing and
//     waiting for acks happen outside it, with the units taken from the pool
//     and the range marked busy, so concurrent faults on one unit make one
//     allocation and faults elsewhere never wait for this one;
//   * ENOSPC from a backing file is not a device failure: the fault fails
//     with ENOSPC and the units go back to the pool.

import { UNIT } from '../config'
import { VstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { Fault, FaultReply } from '../protocol/messages'
import { Flag, NO_DEVICE, type Extent } from '../table/table'
import type { Piece } from './allocator'
import type { AgentRec } from './agents'
import { busyAt, markBusy, type Ctx } from './context'
import { writeProtected } from './cow'
import { log } from './log'
import { trimDirty } from './space'
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
  if (!agent) throw new VstorError('BAD_REQUEST', 'fault is for agents')
  const where = `disk ${f.disk} [${f.offset}, +${f.length})`
  switch (f.kind) {
    case 'unmapped':
      // Nothing to map it to: the agent already failed the I/O with EIO.
      log(`fault unmapped from ${agent.id}: ${where}, denied`)
      return { action: 'deny', reason: 'no mapping', errno: 'EIO' }
    case 'write-protected':
      // a move holding the range lets it through after its switch; shared units are copied; an admin's no-write is EROFS
      return writeProtected(ctx, f, agent, (gen) => ackedRetry(ctx, agent, gen, f.disk))
    case 'unallocated':
      return unallocated(ctx, f, agent)
    case 'device-error':
      return deviceError(ctx, f, agent)
    default:
      throw new VstorError('BAD_REQUEST', `unknown fault kind '${String(f.kind)}'`)
  }
}

type Plan =
  | { kind: 'wait'; done: Promise<void> }
  | { kind: 'mapped'; gen: number }
  | { kind: 'nospace' }
  | { kind: 'alloc'; disk: DiskRec; start: number; end: number; old: Extent[]; pieces: Piece[]; finish: () => void }

/** First write into Zero space: take units, make them read zeros, commit lazily, push, then retry. */
async function unallocated(ctx: Ctx, f: Fault, agent: AgentRec): Promise<FaultReply> {
  const { state } = ctx
  const deadline = Date.now() + ctx.noSpaceTimeoutMs
  let waited = false
  for (;;) {
    const plan = await state.lock.run(async (): Promise<Plan> => {
      const disk = state.disk(f.disk)
      const [start, end] = unitRange(disk, f.offset, f.length)
      const busy = busyAt(ctx, disk.uid, start, end)
      if (busy) return { kind: 'wait', done: busy.done }
      const old = disk.table.slice(start, end)
      const zeroBytes = old.filter((e) => e.flags & Flag.Zero).reduce((s, e) => s + e.length, 0)
      if (zeroBytes === 0) return { kind: 'mapped', gen: disk.table.generation }
      let pieces: Piece[]
      try {
        pieces = state.alloc.allocate(zeroBytes, state.poolFor(disk, agent.missing))
      } catch (e) {
        if (e instanceof VstorError && e.code === 'NO_SPACE') return { kind: 'nospace' }
        throw e
      }
      state.alloc.take(pieces)
      return { kind: 'alloc', disk, start, end, old, pieces, finish: markBusy(ctx, disk.uid, start, end) }
    })
    if (plan.kind === 'wait') {
      await plan.done
      continue
    }
    if (plan.kind === 'mapped') return ackedRetry(ctx, agent, plan.gen, f.disk)
    if (plan.kind === 'alloc') {
      try {
        return await allocate(ctx, plan, agent)
      } finally {
        plan.finish()
      }
    }
    if (!waited) log(`pool full: fault unallocated from ${agent.id} on disk ${f.disk} waits up to ${ctx.noSpaceTimeoutMs} ms for a device`)
    waited = true
    if (Date.now() >= deadline) {
      log(`pool full: fault unallocated from ${agent.id} on disk ${f.disk} [${f.offset}, +${f.length}) failed: no space`)
      return { action: 'fail', reason: 'no space', errno: 'ENOSPC' }
    }
    await new Promise((res) => setTimeout(res, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))))
  }
}

async function allocate(ctx: Ctx, p: Extract<Plan, { kind: 'alloc' }>, agent: AgentRec): Promise<FaultReply> {
  const { state } = ctx
  try {
    await prepare(ctx, p.pieces)
  } catch (e) {
    await state.lock.run(async () =>
      state.alloc.give(
        p.pieces.filter((x) => state.devices.has(x.device)),
        true,
      ),
    )
    const code = (e as NodeJS.ErrnoException).code
    log(`fault unallocated from ${agent.id}: disk ${p.disk.name} [${p.start}, ${p.end}): preparing space failed: ${(e as Error).message}`)
    return code === 'ENOSPC'
      ? { action: 'fail', reason: 'the backing file system is full', errno: 'ENOSPC' }
      : { action: 'fail', reason: `the device failed: ${(e as Error).message}`, errno: 'EIO' }
  }
  const gen = await state.lock.run(async () => {
    const disk = state.disks.get(p.disk.name)
    const now = disk?.uid === p.disk.uid ? disk.table.slice(p.start, p.end) : null
    if (!disk || !now || JSON.stringify(now) !== JSON.stringify(p.old)) {
      state.alloc.give(
        p.pieces.filter((x) => state.devices.has(x.device)),
        true,
      ) // the range changed meanwhile: ask again
      return null
    }
    const change = disk.table.plan(p.start, p.end, spread(p.old, p.pieces))
    const dirty = p.pieces.filter((x) => x.dirty)
    // Lazy commit: the agent's fsync of this disk asks for metadata.sync (a barrier) first.
    const g = await state.commitChange(disk, change, {
      durable: false,
      preTaken: true,
      extra: async () => {
        for (const x of dirty) await trimDirty(state, x.device, x.pstart, x.pstart + x.length)
      },
    })
    if (!isEmpty(change)) ctx.outbox.update(disk, change, g, { lazy: true })
    log(`fault unallocated from ${agent.id}: disk ${disk.name} [${p.start}, ${p.end}) allocated, generation ${g}`)
    return g
  })
  if (gen === null) return { action: 'retry', reason: 'the range changed; fault again if still needed' }
  return ackedRetry(ctx, agent, gen, p.disk.name)
}

/** Make every piece read zeros with host space behind it: dirty ones are zeroed, clean ones reserved. */
async function prepare(ctx: Ctx, pieces: Piece[]): Promise<void> {
  await ctx.space.waitScrub(pieces.filter((x) => x.dirty))
  for (const x of pieces) {
    const d = ctx.state.devices.get(x.device)
    if (!d) throw new VstorError('INTERNAL', `device #${x.device} left the pool while space on it was taken`)
    const dev = await ctx.io.get(d)
    if (x.dirty) await dev.zero(x.pstart, x.length)
    else await dev.reserve(x.pstart, x.length)
  }
}

/** The Zero parts of `old` mapped onto the pieces in order; other parts kept. */
function spread(old: Extent[], pieces: Piece[]): Extent[] {
  const left = pieces.map((x) => ({ ...x }))
  const out: Extent[] = []
  for (const e of old) {
    if (!(e.flags & Flag.Zero)) {
      out.push(e)
      continue
    }
    let v = e.vstart
    let n = e.length
    while (n > 0) {
      const x = left[0]!
      const take = Math.min(n, x.length)
      out.push({ vstart: v, length: take, device: x.device, pstart: x.pstart, flags: e.flags & ~Flag.Zero })
      v += take
      n -= take
      if (take === x.length) left.shift()
      else left[0] = { ...x, pstart: x.pstart + take, length: x.length - take }
    }
  }
  return out
}

/** Retry once the agent has a table at or after gen (outside the lock). */
async function ackedRetry(ctx: Ctx, agent: AgentRec, gen: number, disk: string): Promise<FaultReply> {
  try {
    await ctx.outbox.acked(gen, { who: [agent], timeoutMs: ctx.agentTimeoutMs, what: 'fault retry' })
  } catch {
    if (agent.conn && !agent.conn.closed && !agent.loading) ctx.outbox.load(agent, 'fault retry needs the new table')
    return { action: 'fail', reason: 'the agent did not take the table change', errno: 'EIO' }
  }
  // The write must not complete while another agent that has the disk open still reads the old
  // place (zeros, a shared unit, a moved chunk's old copy): wait for those too, never longer than the
  // timeout. Agents without the disk open are not waited for, so a stalled host slows only its own disks.
  const others = ctx.agents.connected().filter((a) => a !== agent && a.inSync && a.openDisks.includes(disk))
  await ctx.outbox
    .acked(gen, { who: others, timeoutMs: ctx.agentTimeoutMs, what: 'fault retry, other agents' })
    .catch((e: Error) => log(e.message))
  return { action: 'retry' }
}

/** A device failed under the agent: mark the range Error persistently and the device unhealthy. */
async function deviceError(ctx: Ctx, f: Fault, agent: AgentRec): Promise<FaultReply> {
  const { state } = ctx
  if (f.errno === 'ENOSPC' || f.errno === 'EDQUOT') {
    // A full backing file system is not a broken device.
    log(`fault device-error ${f.errno} from ${agent.id}: disk ${f.disk} [${f.offset}, +${f.length}): the backing file system is full`)
    return { action: 'fail', reason: 'the backing file system is full', errno: 'ENOSPC' }
  }
  return state.lock.run(async () => {
    const disk = state.disk(f.disk)
    const [start, end] = unitRange(disk, f.offset, f.length)
    const devs = new Set<number>(f.device !== undefined ? [f.device] : [])
    for (const e of disk.table.slice(start, end)) if (f.device === undefined && e.device !== NO_DEVICE) devs.add(e.device)
    const change = disk.table.planFlags(start, end, Flag.Error, 0)
    const gen = await state.commitChange(disk, change, {
      extra: async () => {
        for (const id of devs) await state.db.run("UPDATE devices SET errors = errors + 1, health = 'error' WHERE id = ?", [id])
      },
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
      `fault device-error from ${agent.id}: disk ${f.disk} [${f.offset}, +${f.length}) errno ${f.errno ?? '?'} on device ${names || '?'}; range [${start}, ${end}) marked error, generation ${gen}`,
    )
    if (!isEmpty(change)) ctx.outbox.update(disk, change, gen)
    return { action: 'deny', reason: 'device error', errno: 'EIO' } as FaultReply
  })
}
