// Agent unit-test harness: an AgentState over MemStores with a scripted
// stand-in for the controller's fault handling.

import os from 'node:os'
import type { Done } from '../../src/agent/io'
import { AgentState } from '../../src/agent/state'
import type { Hurry } from '../../src/hurry'
import { MiB } from '../../src/size'
import type { Fault, FaultReply } from '../../src/protocol/messages'
import { Flag, NO_DEVICE, Table, type Extent } from '../../src/table/table'
import { MemStore } from './memstore'

export const E = os.constants.errno
export { MiB }

export interface Harness {
  state: AgentState
  stores: Map<number, MemStore>
  faults: Fault[]
  /** Answer faults with this (default: deny). */
  onFault: (f: Fault) => Promise<FaultReply>
  /** Metadata barriers asked for (fsync after allocations); set metaSyncFails to make them fail. */
  metaSyncs: number
  metaSyncFails: boolean
  read(pos: number, len: number): Promise<{ res: number; buf: Buffer }>
  write(pos: number, data: Buffer): Promise<number>
  /** Replace [start, end) with extents, as the controller would push it (lazy: committed without fsync; hold: a move's fence). */
  change(start: number, end: number, extents: Extent[], lazy?: boolean, hold?: boolean): Promise<void>
  /** As the controller answers a first write: zero the units on device `dev` at pstart, map them (lazily), retry. */
  allocate(f: Fault, dev: number, pstart: number): Promise<FaultReply>
}

export const ext = (vstart: number, length: number, device: number, pstart: number, flags = 0): Extent => ({
  vstart,
  length,
  device,
  pstart,
  flags,
})
export const zero = (vstart: number, length: number): Extent => ext(vstart, length, NO_DEVICE, 0, Flag.Zero)

export async function harness(size: number, extents: Extent[], storeSize = 16 * MiB, hurry?: Hurry): Promise<Harness> {
  const stores = new Map<number, MemStore>([
    [1, new MemStore(storeSize)],
    [2, new MemStore(storeSize)],
  ])
  const h: Harness = {
    stores,
    faults: [],
    onFault: async () => ({ action: 'deny' }),
    metaSyncs: 0,
    metaSyncFails: false,
    state: new AgentState({
      metaSync: async () => {
        h.metaSyncs++
        if (h.metaSyncFails) throw new Error('controller unreachable')
        return h.state.generation
      },
      fault: (f) => {
        h.faults.push(f)
        return h.onFault(f)
      },
      open: async (d) => stores.get(d.id)!,
      ...(hurry ? { hurry } : {}),
    }),
    read: (pos, len) =>
      new Promise((resolve) => {
        const buf = Buffer.alloc(len, 0x55)
        const done: Done = (res) => resolve({ res, buf })
        h.state.disks.get('d')!.read(buf, len, pos, done)
      }),
    write: (pos, data) => new Promise((resolve) => h.state.disks.get('d')!.write(data, data.length, pos, resolve)),
    change: async (start, end, exts, lazy, hold) => {
      const c = h.state.disks.get('d')!.table.plan(start, end, exts)
      await h.state.update(
        { generation: h.state.generation + 1, disk: 'd', uid: 'uid-d', size, start: c.start, end: c.end, lazy, hold },
        Table.encode(c.extents),
      )
    },
    allocate: async (f, dev, pstart) => {
      stores.get(dev)!.data.fill(0, pstart, pstart + f.length)
      await h.change(f.offset, f.offset + f.length, [ext(f.offset, f.length, dev, pstart)], true)
      return { action: 'retry' }
    },
  }
  const payload = Table.encode(extents)
  const devices = [
    { id: 1, name: 'a', uuid: 'uuid-a' },
    { id: 2, name: 'b', uuid: 'uuid-b' },
  ]
  await h.state.load(
    { generation: 1, durable: 1, devices, disks: [{ name: 'd', uid: 'uid-d', size, generation: 1, bytes: payload.length }] },
    payload,
  )
  return h
}

export const pattern = (len: number, seed: number): Buffer => {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = (seed + i * 7) & 0xff
  return b
}
