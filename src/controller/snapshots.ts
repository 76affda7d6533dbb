// disk.snapshot / disk.clone / disk.revert: disks that share physical units.
//
// A snapshot (read-only) or clone (writable) maps the same units as its
// source; every mapped extent on both sides gets Shared, so the first write
// into one faults and is copied (cow.ts). One transaction per operation,
// with bulk SQL (a few statements whatever the size), so the time depends on
// the number of extents, not on the data.
//
// Invariants:
//   * crash consistency: the source is busy (faults there wait) from the
//     commit until every known agent applied the Shared flags, so no write can
//     land in a shared unit after an agent fenced it and before all did; if an
//     agent does not answer, the new disk is deleted again, the Shared flags
//     that are no longer needed are cleared, and the operation fails naming it;
//   * references: each mapped span of the source gains one (refs.ts); deleting
//     any disk of the family frees only units no other disk maps;
//   * revert is refused while any known agent has the disk open.

import crypto from 'node:crypto'
import { VstorError } from '../errors'
import type { DiskInfo } from '../protocol/messages'
import { Flag, NO_DEVICE, Table, type Change } from '../table/table'
import { checkName, markBusy, type Ctx } from './context'
import { settle } from './disks'
import { log } from './log'
import { spansOf, type DiskRec } from './state'

/** The source's change: Shared on every mapped extent (no merges can follow: flags change alike). */
function shareChange(src: DiskRec): Change {
  const all = src.table.all()
  const next = all.map((e) => (e.device === NO_DEVICE ? e : { ...e, flags: e.flags | Flag.Shared }))
  return src.table.plan(0, src.size, next)
}

/** snapshot (readonly) or clone (writable) of `source` as `name`. */
async function share(ctx: Ctx, source: string, name: string, readonly: boolean): Promise<DiskInfo> {
  const { state } = ctx
  checkName(name, 'disk')
  const what = readonly ? 'snapshot' : 'clone'
  const t0 = Date.now()
  const r = await state.lock.run(async () => {
    const src = state.disk(source)
    if (state.disks.has(name)) throw new VstorError('EXISTS', `a disk named '${name}' exists already`)
    const change = src.readonly ? null : shareChange(src)
    const extents = src.table.all().map((e) => (e.device === NO_DEVICE ? e : { ...e, flags: e.flags | Flag.Shared }))
    const refs = state.refs.plan(spansOf(extents).map((span) => ({ span, delta: 1 as const })))
    const table = new Table(src.size, extents, state.generation)
    // Two generations when the source changes: agents apply one push per generation and drop
    // anything at or below the one they have, so the new disk cannot share the source's.
    let srcGen = 0
    let gen = 0
    let id = 0
    const uid = crypto.randomUUID().replace(/-/g, '')
    const createdAt = new Date().toISOString()
    await state.db.tx(async () => {
      srcGen = gen = await state.bumpGeneration()
      if (change) {
        await state.db.run(`UPDATE extents SET flags = flags | ${Flag.Shared} WHERE disk_id = ? AND device_id IS NOT NULL`, [src.id])
        await state.db.run('UPDATE disks SET generation = ? WHERE id = ?', [srcGen, src.id])
        gen = srcGen + 1
        await state.db.run("UPDATE meta SET value = ? WHERE key = 'generation'", [String(gen)])
      }
      id = (
        await state.db.run(
          'INSERT INTO disks (name, size, thin, generation, created_at, uid, origin, readonly, devices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [
            name,
            src.size,
            src.thin ? 1 : 0,
            gen,
            createdAt,
            uid,
            src.uid,
            readonly ? 1 : 0,
            src.devices ? JSON.stringify(src.devices) : null,
          ],
        )
      ).lastID
      await state.db.run(
        `INSERT INTO extents (disk_id, vstart, length, device_id, pstart, flags)
         SELECT ?, vstart, length, device_id, pstart, CASE WHEN device_id IS NULL THEN flags ELSE flags | ${Flag.Shared} END
         FROM extents WHERE disk_id = ?`,
        [id, src.id],
      )
      await state.refs.persist(state.db, refs)
    })
    state.refs.apply(refs)
    if (change) src.table.apply(change, srcGen)
    table.generation = gen
    const disk: DiskRec = {
      id,
      uid,
      name,
      size: src.size,
      thin: src.thin,
      createdAt,
      table,
      origin: src.uid,
      readonly,
      devices: src.devices,
    }
    state.disks.set(name, disk)
    state.generation = gen
    state.durable = gen
    const finish = markBusy(ctx, src.uid, 0, src.size)
    if (change) ctx.outbox.update(src, change, srcGen)
    ctx.outbox.diskAdd(disk, gen)
    return { gen, finish, src }
  })
  try {
    await ctx.outbox.acked(r.gen, { timeoutMs: ctx.agentTimeoutMs, what: `${what} '${name}' of disk '${source}'` })
  } catch (e) {
    await undo(ctx, name, r.src)
    throw e
  } finally {
    r.finish()
  }
  log(`disk ${name}: ${what} of ${source} (${r.src.table.count} extents) in ${Date.now() - t0} ms, generation ${r.gen}`)
  return state.diskInfo(state.disk(name), [])
}

/** An agent did not answer: the new disk goes again and the source loses the Shared flags it no longer needs. */
async function undo(ctx: Ctx, name: string, src: DiskRec): Promise<void> {
  const { state } = ctx
  await state.lock.run(async () => {
    const d = state.disks.get(name)
    if (d) {
      const gen = await state.deleteDisk(d)
      ctx.outbox.diskRemove(d, gen)
    }
    const cur = state.disks.get(src.name)
    if (!cur || cur.uid !== src.uid || cur.readonly) return
    const next = cur.table
      .all()
      .map((e) =>
        e.flags & Flag.Shared && state.refs.sharedBytes({ device: e.device, pstart: e.pstart, length: e.length }) === 0
          ? { ...e, flags: e.flags & ~Flag.Shared }
          : e,
      )
    const change = cur.table.plan(0, cur.size, next)
    const gen = await state.commitChange(cur, change)
    ctx.outbox.update(cur, change, gen)
  })
  log(`disk ${name} was not kept: an agent did not apply it in time`)
}

export function diskSnapshot(ctx: Ctx, p: { name: string; snapshot: string }): Promise<DiskInfo> {
  return share(ctx, p.name, p.snapshot, true)
}

export function diskClone(ctx: Ctx, p: { source: string; name: string }): Promise<DiskInfo> {
  return share(ctx, p.source, p.name, false)
}

/** Point a disk back at one of its snapshots: its table becomes the snapshot's (shared), its old units lose a reference. */
export async function diskRevert(ctx: Ctx, p: { name: string; to: string }): Promise<DiskInfo> {
  const { state } = ctx
  const { disk, gen } = await state.lock.run(async () => {
    const disk = state.disk(p.name)
    const snap = state.disk(p.to)
    if (disk.readonly) throw new VstorError('READ_ONLY', `disk '${disk.name}' is a read-only snapshot; revert a writable disk`)
    if (!snap.readonly || snap.origin !== disk.uid) {
      throw new VstorError('BAD_ARGUMENT', `'${snap.name}' is not a snapshot of disk '${disk.name}'; see \`vstor disk list\` (ORIGIN)`)
    }
    const open = ctx.agents.openBy(disk.name)
    if (open.length) {
      throw new VstorError(
        'DISK_OPEN',
        `disk '${disk.name}' is open on agent(s) ${open.map((a) => ctx.agents.describe(a)).join(', ')}: close it before reverting`,
      )
    }
    const extents = snap.table.all()
    const refs = state.refs.plan([
      ...spansOf(extents).map((span) => ({ span, delta: 1 as const })),
      ...spansOf(disk.table.all()).map((span) => ({ span, delta: -1 as const })),
    ])
    let gen = 0
    await state.db.tx(async () => {
      gen = await state.bumpGeneration()
      await state.db.run('DELETE FROM extents WHERE disk_id = ?', [disk.id])
      await state.db.run(
        'INSERT INTO extents (disk_id, vstart, length, device_id, pstart, flags) SELECT ?, vstart, length, device_id, pstart, flags FROM extents WHERE disk_id = ?',
        [disk.id, snap.id],
      )
      await state.db.run('UPDATE disks SET size = ?, generation = ? WHERE id = ?', [snap.size, gen, disk.id])
      await state.insertQuarantine(refs.freed, gen)
      await state.refs.persist(state.db, refs)
    })
    state.refs.apply(refs)
    state.applyQuarantine(refs.freed, gen)
    disk.table = new Table(snap.size, extents, gen)
    disk.size = snap.size
    state.generation = gen
    state.durable = gen
    ctx.outbox.diskReplace(disk, gen)
    log(`disk ${disk.name} reverted to snapshot ${snap.name}, generation ${gen}`)
    return { disk, gen }
  })
  await settle(ctx, gen)
  await ctx.space.releaseNow()
  return state.diskInfo(disk, [])
}
