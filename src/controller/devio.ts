// The controller's own handles on pool devices (zeroing, scrubbing, copies),
// through the one device layer the agents use too.
// Invariants: one open Device per device id, opened with its label uuid
// checked (a wrong disk at the recorded path is never written); opening is
// async and shared by concurrent callers; close() waits for in-flight I/O.

import { openDevice, type Device } from '../device'
import { VstorError } from '../errors'
import type { DeviceRec } from './state'

export class DeviceIo {
  private readonly open = new Map<number, Promise<Device>>()

  /** The device's handle, opened on first use. Rejects with what went wrong (missing path, wrong label …). */
  get(d: DeviceRec): Promise<Device> {
    const have = this.open.get(d.id)
    if (have) return have
    const p = openDevice(d.path, { uuid: d.uuid, mode: 'async' }).catch((e: Error) => {
      this.open.delete(d.id)
      if (e instanceof VstorError) throw e
      throw new VstorError('DEVICE_INVALID', `cannot open device '${d.name}' at ${d.path}: ${e.message}`)
    })
    this.open.set(d.id, p)
    return p
  }

  /** Forget (and close) a handle: the device left the pool, or it failed and should be reopened. */
  async drop(id: number): Promise<void> {
    const p = this.open.get(id)
    this.open.delete(id)
    if (p) await p.then((d) => d.close()).catch(() => undefined)
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.open.keys()].map((id) => this.drop(id)))
  }
}

/** Read what the device holds now, not this host's cached copy: an agent on another host may have written it. */
export function readFresh(dev: Device, buf: Buffer, pos: number): Promise<void> {
  dropFresh(dev, pos, buf.length)
  return dev.readAt(buf, pos)
}

/**
 * Forget this host's cached pages of [pos, pos+len) before reading it: reads started afterwards see
 * what the device holds now. For a large range read in several requests, call it once first (not
 * per request, as readFresh does), so the kernel's readahead for one request serves the next.
 */
export function dropFresh(dev: Device, pos: number, len: number): void {
  dev.dropCache(pos, len)
}
