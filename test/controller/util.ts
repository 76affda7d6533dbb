// Test fixture: a controller running in this process on a temp dir and socket,
// a CLI client, and a fake agent that acks pushes and records them.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { connect, type Connection } from '../../src/protocol/connection'
import type { CliMethods, Method, Params, Result } from '../../src/protocol/messages'
import { runController, type ControllerOptions } from '../../src/controller/index'
import { VstorError } from '../../src/errors'

export const MiB = 2 ** 20

export interface Fixture {
  dir: string
  socket: string
  dataDir: string
  call<M extends keyof CliMethods>(method: M, params: Params<M>): Promise<Result<M>>
  /** The VstorError code a call fails with (fails the test if it succeeds). */
  failCode<M extends keyof CliMethods>(method: M, params: Params<M>): Promise<string>
  file(name: string, size: number): string
  restart(opts?: Partial<ControllerOptions>): Promise<void>
  stop(): Promise<void>
  /** Run at teardown before the controller stops (last registered first). */
  onCleanup(fn: () => void | Promise<void>): void
  /** Wait until the scrubber zeroed every new or freed range (device lists stop changing on their own). */
  scrubbed(): Promise<void>
}

export function tempDir(t?: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-ctl-'))
  t?.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function startFixture(t: TestContext, opts: Partial<ControllerOptions> = {}): Promise<Fixture> {
  const dir = tempDir()
  const socket = path.join(dir, 'vstor.sock')
  const dataDir = path.join(dir, 'data')
  let running: Promise<void> | null = null
  let conn: Connection | null = null
  const start = async (o: Partial<ControllerOptions>) => {
    running = runController({ socket, dataDir, ...opts, ...o })
    running.catch(() => undefined)
    await waitFor(() => fs.existsSync(socket), 'the controller socket')
    conn = (await connect(socket, { role: 'cli' })).conn
  }
  const stop = async () => {
    if (!running) return
    conn?.close()
    try {
      const c = (await connect(socket, { role: 'cli' })).conn
      await c.call('controller.stop', {}).catch(() => undefined)
      c.close()
    } catch {
      process.emit('SIGTERM') // the in-process controller listens for it
    }
    await running
    running = null
  }
  const cleanups: (() => void | Promise<void>)[] = []
  t.after(async () => {
    try {
      for (const fn of cleanups.reverse()) await fn()
    } finally {
      await stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
  await start({})
  const call = <M extends keyof CliMethods>(method: M, params: Params<M>) =>
    (conn as Connection).call(method as Method, params) as Promise<Result<M>>
  return {
    dir,
    socket,
    dataDir,
    call,
    async failCode(method, params) {
      try {
        await call(method, params)
      } catch (e) {
        if (e instanceof VstorError) return e.code
        throw e
      }
      throw new Error(`${method} succeeded but should have failed`)
    },
    file(name, size) {
      const p = path.join(dir, name)
      fs.writeFileSync(p, '')
      fs.truncateSync(p, size)
      return p
    },
    async restart(o = {}) {
      await stop()
      await start(o)
    },
    stop,
    onCleanup: (fn) => cleanups.push(fn),
    async scrubbed() {
      const deadline = Date.now() + 30_000
      while ((await call('device.list', {})).some((d) => d.scrubbing > 0)) {
        if (Date.now() > deadline) throw new Error('timed out waiting for the scrubber')
        await new Promise((r) => setTimeout(r, 20))
      }
    },
  }
}
