// device.add / device.remove / device.list. Labels are written (fsync'd)
// before the row is committed and wiped if the commit fails, so a labelled
// device without a row only exists if the controller dies in between.

import crypto from 'node:crypto'
import { LABEL_AREA } from '../config'
import { probe, wipeLabel, writeLabel } from '../device'
import { VstorError } from '../errors'
import type { DeviceInfo } from '../protocol/messages'
import { checkName, type Ctx } from './context'
import { zeroingOn } from './disks'
import { log } from './log'

export async function deviceAdd(ctx: Ctx, params: { path: string; name?: string }): Promise<DeviceInfo> {
  const { state } = ctx
  return state.lock.run(async () => {
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
      })
      log(`device ${name} added: ${p.path} (${p.kind}, ${p.size} bytes, uuid ${uuid})`)
      return state.deviceInfo(d)
    } catch (e) {
      await wipeLabel(p.path)
      throw e
    }
  })
}

export async function deviceRemove(ctx: Ctx, params: { name: string }): Promise<DeviceInfo> {
  const { state } = ctx
  return state.lock.run(async () => {
    const d = state.deviceByName(params.name)
    if (zeroingOn(d.id))
      throw new VstorError('DEVICE_BUSY', `device '${d.name}' is being zeroed for a new disk; retry when \`disk create --zero\` is done`)
    const users = state.usersOf(d.id)
    if (users.length > 0) {
      throw new VstorError('DEVICE_BUSY', `device '${d.name}' holds extents of disk(s) ${users.join(', ')}; delete or move them first`)
    }
    const info = state.deviceInfo(d)
    await state.deleteDevice(d)
    try {
      await wipeLabel(d.path)
    } catch (e) {
      log(`device ${d.name}: could not wipe the label on ${d.path}: ${(e as Error).message}`)
    }
    log(`device ${d.name} removed (${d.path})`)
    return info
  })
}

export function deviceList(ctx: Ctx): DeviceInfo[] {
  return [...ctx.state.devices.values()].map((d) => ctx.state.deviceInfo(d))
}
