// Request dispatch for CLI and agent connections, and the hello that admits
// agents. Invariants: a handler error becomes an error reply (VstorError code
// + message) and never escapes into the process; agent-only methods are
// refused on CLI connections; an agent is attached (and sent its table) only
// after its hello passed the epoch check.

import { PROTOCOL_VERSION } from '../config'
import { VstorError, toVstorError } from '../errors'
import type { Connection } from '../protocol/connection'
import type { Fault, Hello, HelloReply, Status } from '../protocol/messages'
import type { AgentRec } from './agents'
import { backup } from './backup'
import type { Ctx } from './context'
import { discard } from './cow'
import { deviceAdd, deviceCheck, deviceList, deviceRemove } from './devices'
import { diskCreate, diskDelete, diskList, diskMap, extentSet } from './disks'
import { handleFault } from './faults'
import { deviceEvacuate, diskMove } from './jobs/kinds'
import { log } from './log'
import { diskResize } from './resize'
import { diskClone, diskRevert, diskSnapshot } from './snapshots'

type P = Record<string, unknown>

function missingDevices(ctx: Ctx, a: AgentRec): string[] {
  const missing = new Set(a.missing)
  return [...ctx.state.devices.values()].filter((d) => missing.has(d.uuid)).map((d) => d.name)
}

export function agentList(ctx: Ctx) {
  return [...ctx.agents.byId.values()].map((a) => ctx.agents.info(a, missingDevices(ctx, a)))
}

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
    agents: agentList(ctx),
    disks: diskList(ctx),
    devices: deviceList(ctx),
  }
}

function agentOf(ctx: Ctx, conn: Connection, method: string): AgentRec {
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
    case 'controller.backup':
      return backup(ctx, params as { path: string })
    case 'device.add':
      return deviceAdd(ctx, params as { path: string; name?: string })
    case 'device.list':
      return deviceList(ctx)
    case 'device.remove':
      return deviceRemove(ctx, params as { name: string })
    case 'device.check':
      return deviceCheck(ctx, params as { name: string })
    case 'device.evacuate':
      return deviceEvacuate(ctx, params as { name: string; to?: string[] })
    case 'disk.create':
      // the connection gets the progress notes while space is zeroed
      return diskCreate(ctx, params as Parameters<typeof diskCreate>[1], conn)
    case 'disk.list':
      return diskList(ctx)
    case 'disk.delete':
      return diskDelete(ctx, params as { name: string; force?: boolean })
    case 'disk.map':
      return diskMap(ctx, params as { name: string })
    case 'disk.resize':
      return diskResize(ctx, params as { name: string; size: number; shrink?: boolean }, conn)
    case 'disk.snapshot':
      return diskSnapshot(ctx, params as { name: string; snapshot: string })
    case 'disk.clone':
      return diskClone(ctx, params as { source: string; name: string })
    case 'disk.revert':
      return diskRevert(ctx, params as { name: string; to: string })
    case 'disk.move':
      return diskMove(ctx, params as Parameters<typeof diskMove>[1])
    case 'extent.set':
      return extentSet(ctx, params as Parameters<typeof extentSet>[1])
    case 'agent.list':
      return agentList(ctx)
    case 'agent.forget': {
      const a = await ctx.agents.forget(String(params.id))
      return ctx.agents.info(a, missingDevices(ctx, a))
    }
    case 'job.list':
      return [...ctx.jobs.byId.values()].map((j) => ctx.jobs.info(j))
    case 'job.get':
      return ctx.jobs.info(ctx.jobs.get(Number(params.id)))
    case 'job.wait': {
      const j = await ctx.jobs.wait(Number(params.id), (x) =>
        conn.notify('progress', { op: `job ${x.id}`, done: Math.min(x.done, x.total), total: x.total }),
      )
      return ctx.jobs.info(j)
    }
    case 'job.cancel':
      return ctx.jobs.info(ctx.jobs.cancel(Number(params.id)))
    case 'fault':
      agentOf(ctx, conn, method)
      return handleFault(ctx, params as unknown as Fault, conn)
    case 'metadata.sync':
      // an agent's fsync: allocations committed lazily must be on disk before the guest's flush completes
      agentOf(ctx, conn, method)
      return { generation: await ctx.state.barrier() }
    case 'agent.sync': {
      // a doubtful agent asks: reload it
      const a = agentOf(ctx, conn, method)
      if (Number(params.generation) !== ctx.state.generation || !a.inSync) setImmediate(() => ctx.outbox.load(a, 'agent.sync'))
      return { generation: ctx.state.generation }
    }
    case 'discard':
      return discard(ctx, params as { disk: string; uid: string; offset: number; length: number }, agentOf(ctx, conn, method))
    case 'agent.bye': {
      await ctx.agents.bye(agentOf(ctx, conn, method))
      return {}
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
    const a = ctx.agents.forConn(c)
    if (!a) return
    if (method === 'agent.open') ctx.agents.setOpen(a, (params as { disks: string[] }).disks)
    else if (method === 'agent.devices') a.missing = (params as { missing: string[] }).missing
  })
}

let seq = 0

/** The hello: CLI clients are served as they are; agents are admitted (epoch check), attached and sent their table. */
export function onHello(ctx: Ctx, hello: Hello, conn: Connection): HelloReply {
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw new VstorError(
      'PROTOCOL_VERSION',
      `the peer speaks protocol ${hello.protocol}, this controller ${PROTOCOL_VERSION}: use the same vstor version`,
    )
  }
  let epoch: number | undefined
  if (hello.role === 'agent') {
    // Over TLS the certificate's name is the identity: an agent id is NAME or NAME:…, never another host's.
    const peer = conn.peerName
    if (peer && hello.agentId !== peer && !hello.agentId?.startsWith(`${peer}:`))
      hello = { ...hello, agentId: `${peer}:${hello.mountpoint ?? ''}` }
    const a = ctx.agents.admit(hello, `agent-${process.pid}-${++seq}`)
    attach(ctx, conn)
    ctx.agents.attach(a, conn)
    epoch = a.epoch
    // A reconnect at our generation has everything; anyone else gets the whole table (held until the hello reply).
    if (hello.epoch !== undefined && a.generation === ctx.state.generation && hello.boot === ctx.state.boot) a.inSync = true
    else ctx.outbox.load(a, `hello at generation ${a.generation}`)
  } else attach(ctx, conn)
  return {
    protocol: PROTOCOL_VERSION,
    controllerId: ctx.state.controllerId,
    generation: ctx.state.generation,
    boot: ctx.state.boot,
    ...(epoch !== undefined ? { epoch } : {}),
  }
}
