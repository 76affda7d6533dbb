// A protocol client to the instance's controller for the reliability tests:
// queries (status, maps, backup) without a CLI process each, reconnecting
// after the controller was killed and started again.
//
// Invariant: the connection is closed at teardown; a call on a connection
// the controller dropped reconnects once and retries.

import { connect, type Connection } from '../../src/protocol/connection'
import type { CliMethods, Method, Params, Result } from '../../src/protocol/messages'
import type { Instance } from '../helpers/instance'
import { deviceOverlaps, mapProblem } from '../helpers/map'
import { sh } from '../helpers/proc'
import type { DiskMap } from '../../src/protocol/messages'

export interface Client {
  call<M extends keyof CliMethods>(method: M, params: Params<M>): Promise<Result<M>>
  close(): void
}

export function client(v: Instance): Client {
  let conn: Connection | null = null
  const get = async (): Promise<Connection> => {
    if (!conn || conn.closed) conn = (await connect(v.socket, { role: 'cli', pid: process.pid })).conn
    return conn
  }
  const c: Client = {
    async call(method, params) {
      for (let attempt = 0; ; attempt++) {
        const cn = await get()
        try {
          return (await cn.call(method as Method, params)) as Result<typeof method>
        } catch (e) {
          if (attempt > 0 || !cn.closed) throw e
        }
      }
    },
    close: () => conn?.close(),
  }
  v.onCleanup(() => c.close())
  return c
}

/** `PRAGMA integrity_check` of an online copy made by `controller.backup`: '' when ok, else what it said. */
export async function integrityProblem(c: Client, copy: string): Promise<string> {
  await c.call('controller.backup', { path: copy })
  const r = await sh('sqlite3', ['-readonly', copy, 'PRAGMA integrity_check'])
  return r.code === 0 && r.stdout.trim() === 'ok' ? '' : `integrity_check: ${r.stdout.trim()} ${r.stderr.trim()}`
}

/** The table invariants over every disk: exact cover, no physical range owned twice, inside the devices' data areas. */
export async function tableProblems(c: Client): Promise<string[]> {
  const devices = await c.call('device.list', {})
  const maps: DiskMap[] = []
  for (const d of await c.call('disk.list', {})) maps.push(await c.call('disk.map', { name: d.name }))
  const out: string[] = []
  for (const m of maps) {
    const p = mapProblem(m)
    if (p) out.push(`${m.name}: ${p}`)
    for (const e of m.extents) {
      if (e.device === null || e.deviceOffset === null) continue
      const dev = devices.find((d) => d.name === e.device)
      if (!dev || e.deviceOffset < dev.dataStart || e.deviceOffset + e.length > dev.size)
        out.push(`${m.name}@${e.offset}: [${e.deviceOffset}, +${e.length}) is outside the data area of ${e.device}`)
    }
  }
  return [...out, ...deviceOverlaps(maps)]
}
