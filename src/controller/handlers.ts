// Request dispatch for CLI and agent connections. Invariant: a handler error
// becomes an error reply (VstorError code + message) and never escapes into
// the process; agent-only methods are refused on CLI connections.

import { PROTOCOL_VERSION } from '../config'
import { VstorError, toVstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { Fault, Status } from '../protocol/messages'
import { deviceAdd, deviceList, deviceRemove } from './devices'
import { diskCreate, diskDelete, diskList, diskMap, extentSet } from './disks'
import type { Ctx } from './context'
import { handleFault } from './faults'
import { log } from './log'

type P = Record<string, unknown>

function status(ctx: Ctx): Status {
  return {
    controller: {
      id: ctx.state.controllerId,
      pid: process.pid,
      socket: ctx.socket,
      dataDir: ctx.dataDir,
      database: ctx.database,
      startedAt: ctx.startedAt.toISOString(),
      generation: ctx.state.generation,
      protocol: PROTOCOL_VERSION,
    },
    agents: ctx.agents.info(),
    disks: diskList(ctx),
    devices: deviceList(ctx),
  }
}

function agentOf(ctx: Ctx, conn: Connection, method: string) {
  const a = ctx.agents.forConn(conn)
  if (!a) throw new VstorError('BAD_REQUEST', `${method} is for agents; this connection said hello as ${conn.hello?.role ?? 'nobody'}`)
  return a
}

async function dispatch(ctx: Ctx, method: string, params: P, conn: Connection): Promise<unknown> {
  switch (method) {
    case 'status':
      return status(ctx)
    case 'controller.stop':
      // reply first, then shut down
      setImmediate(() => ctx.stop())
      return { stopping: true }
    case 'device.add':
      return deviceAdd(ctx, params as { path: string; name?: string })
    case 'device.list':
      return deviceList(ctx)
    case 'device.remove':
      return deviceRemove(ctx, params as { name: string })
    case 'disk.create':
      // the connection gets the progress notes of --zero
      return diskCreate(ctx, params as Parameters<typeof diskCreate>[1], conn)
    case 'disk.list':
      return diskList(ctx)
    case 'disk.delete':
      return diskDelete(ctx, params as { name: string; force?: boolean })
    case 'disk.map':
      return diskMap(ctx, params as { name: string })
    case 'extent.set':
      return extentSet(ctx, params as Parameters<typeof extentSet>[1])
    case 'fault':
      agentOf(ctx, conn, method)
      return handleFault(ctx, params as unknown as Fault, conn)
    case 'metadata.sync':
      // an agent's fsync: allocations committed lazily must be on disk before the guest's flush completes
      agentOf(ctx, conn, method)
      await ctx.state.db.barrier()
      return { generation: ctx.state.generation }
    case 'agent.sync': {
      // a reconnected or doubtful agent asks: reload it if it is behind
      const a = agentOf(ctx, conn, method)
      a.generation = Number(params.generation)
      if (a.generation !== ctx.state.generation) setImmediate(() => void ctx.agents.load(a, 'agent.sync'))
      return { generation: ctx.state.generation }
    }
    default:
      throw new VstorError('UNKNOWN_METHOD', `unknown method '${method}'`)
  }
}

/** Wire a freshly accepted connection to the handlers. */
export function attach(ctx: Ctx, conn: Connection): void {
  conn.onRequest(async (method, params, _payload, c) => {
    try {
      return await dispatch(ctx, method, (params ?? {}) as P, c)
    } catch (e) {
      const err = toVstorError(e)
      if (err.code === 'INTERNAL') log(`${method} failed with an internal error: ${(e as Error).stack ?? err.message}`)
      throw err
    }
  })
  conn.onNote((method, params, c) => {
    if (method !== 'agent.open') return
    const a = ctx.agents.forConn(c)
    const disks = (params as { disks?: unknown }).disks
    if (a && Array.isArray(disks)) a.openDisks = disks.filter((d): d is string => typeof d === 'string')
  })
}
