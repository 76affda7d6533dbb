// device.add / device.remove / device.list / device.check.
//
// Invariants:
//   * a label is written (fsync'd) before the row is committed and wiped if
//     the commit fails, so a labelled device without a row only exists if the
//     controller dies in between;
//   * a new device's whole data area is dirty: nothing maps it before it was
//     zeroed (the scrubber runs at once; allocations zero what they take);
//   * a device leaves the pool only when no extent, quarantine entry or job
//     uses it;
//   * device check clears health=error only after the label matched and a
//     read and a write-back of the label block went through.

import crypto from 'node:crypto'
import { LABEL_AREA } from '../config'
import { openDevice, probe, wipeLabel, writeLabel, LABEL_SIZE } from '../device'
import { VstorError } from '../errors'
import type { DeviceInfo } from '../protocol/messages'
import { checkName, type Ctx } from './context'
import { log } from './log'

export async function deviceAdd(ctx: Ctx, params: { path: string; name?: string }): Promise<DeviceInfo> {
  const { state } = ctx
  const info = await state.lock.run(async () => {
    if (params.name !== undefined) checkName(params.name, 'device')
    const p = await probe(params.path)
    for (const d of state.devices.values()) {
      if (d.path === p.path) throw new VstorError('EXISTS', `${p.path} is registered already as device '${d.name}'`)
    }
    if (p.label) {
      throw new VstorError(
        'DEVICE_LABELLED',
        `${p.path} is already a vstor device (uuid ${p.label.uuid}); run \`vstor device remove\` on its controller, or wipe its first 4 KiB`,
      )
    }
    const names = new Set([...state.devices.values()].map((d) => d.name))
    let name = params.name
    if (name === undefined) {
      let i = 0
      while (names.has(`dev${i}`)) i++
      name = `dev${i}`
    } else if (names.has(name)) throw new VstorError('EXISTS', `a device named '${name}' exists already`)
    const uuid = crypto.randomUUID()
    const createdAt = new Date().toISOString()
    await writeLabel(p.path, { version: 1, uuid, controllerId: state.controllerId, name, createdAt })
    try {
      const d = await state.insertDevice({
        name,
        path: p.path,
        uuid,
        kind: p.kind,
        size: p.size,
        dataStart: LABEL_AREA,
        health: 'ok',
        errors: 0,
        createdAt,
        state: 'active',
      })
      log(`device ${name} added: ${p.path} (${p.kind}, ${p.size} bytes, uuid ${uuid}); zeroing its data area in the background`)
      return state.deviceInfo(d)
    } catch (e) {
      await wipeLabel(p.path).catch(() => undefined)
      throw e
    }
  })
  ctx.space.kick()
  return info
}

export async function deviceRemove(ctx: Ctx, params: { name: string }): Promise<DeviceInfo> {
  const { state } = ctx
  const d = await state.lock.run(async () => {
    const d = state.deviceByName(params.name)
    const users = state.usersOf(d.id)
    if (users.length > 0) {
      const how = d.state === 'evacuating' ? 'wait for the evacuation to finish' : `move them first (\`vstor device evacuate ${d.name}\`)`
      throw new VstorError('DEVICE_BUSY', `device '${d.name}' holds extents of disk(s) ${users.join(', ')}; ${how}`)
    }
    if (ctx.jobs.usesDevice(d.name)) throw new VstorError('DEVICE_BUSY', `a job still uses device '${d.name}'; see \`vstor job list\``)
    if (state.quarantinedBytes(d.id) > 0) {
      const waiting = ctx.agents.known().filter((a) => a.generation < state.generation)
      throw new VstorError(
        'DEVICE_BUSY',
        `device '${d.name}' has freed space that agent(s) ${waiting.map((a) => ctx.agents.describe(a)).join(', ') || '(none)'} may still write; ` +
          'retry once they applied the latest change (`vstor agent list`)',
      )
    }
    const info = state.deviceInfo(d)
    await state.deleteDevice(d)
    return { d, info }
  })
  await ctx.io.drop(d.d.id)
  try {
    await wipeLabel(d.d.path)
  } catch (e) {
    log(`device ${d.d.name}: could not wipe the label on ${d.d.path}: ${(e as Error).message}`)
  }
  log(`device ${d.d.name} removed (${d.d.path})`)
  return d.info
}

export function deviceList(ctx: Ctx): DeviceInfo[] {
  return [...ctx.state.devices.values()].map((d) => ctx.state.deviceInfo(d))
}

/** Re-read the label, read and write back its block; a working device gets health ok again. */
export async function deviceCheck(ctx: Ctx, params: { name: string }): Promise<DeviceInfo> {
  const { state } = ctx
  const d = state.deviceByName(params.name)
  await ctx.io.drop(d.id) // a fresh open: the old fd may be the broken one
  let dev
  try {
    dev = await openDevice(d.path, { uuid: d.uuid })
  } catch (e) {
    throw new VstorError('DEVICE_INVALID', `device '${d.name}' failed its check: ${(e as Error).message}`)
  }
  try {
    const buf = Buffer.alloc(LABEL_SIZE)
    await dev.readAt(buf, 0)
    await dev.writeAt(buf, 0)
    await dev.syncP()
  } catch (e) {
    throw new VstorError('DEVICE_INVALID', `device '${d.name}' (${d.path}) failed its I/O check: ${(e as Error).message}`)
  } finally {
    await dev.close()
  }
  return state.lock.run(async () => {
    if (d.health === 'error') {
      await state.db.tx(() => state.db.run("UPDATE devices SET health = 'ok' WHERE id = ?", [d.id]))
      d.health = 'ok'
      log(`device ${d.name} passed its check: health ok again (extents marked error stay so until \`vstor extent set --clear error\`)`)
    }
    return state.deviceInfo(d)
  })
}
