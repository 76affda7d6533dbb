import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { startControllerDetached, stopController } from '../../src/controller/index'
import { pidAlive, spawnDetached, vstorBin } from '../../src/daemon'
import { VstorError } from '../../src/errors'
import { connect } from '../../src/protocol/connection'
import { tempDir } from './util'

const built = fs.existsSync(vstorBin()) && fs.existsSync(path.resolve(path.dirname(vstorBin()), '../dist/commands'))

async function failure(p: Promise<unknown>): Promise<VstorError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  )
  assert.ok(e instanceof VstorError, `expected a VstorError, got ${String(e)}`)
  return e
}

test(
  'detached controller: ready once the socket answers, refuses a second start, stops and removes its socket',
  { skip: !built && 'bin/vstor or dist/commands missing' },
  async (t) => {
    const dir = tempDir(t)
    const socket = path.join(dir, 'run', 'vstor.sock')
    const dataDir = path.join(dir, 'data')
    let pid = 0
    t.after(() => {
      if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL')
    })
    pid = (await startControllerDetached({ socket, dataDir, refreshIntervalMs: 30_000, noSpaceTimeoutMs: 1000 })).pid
    const { conn } = await connect(socket, { role: 'cli' })
    const st = await conn.call('status', {})
    conn.close()
    assert.equal(st.controller.pid, pid)
    assert.equal(st.controller.database, path.join(dataDir, 'vstor.db'))
    assert.match(fs.readFileSync(path.join(dataDir, 'controller.log'), 'utf8'), /controller .* started/)

    const again = await failure(startControllerDetached({ socket, dataDir }))
    assert.equal(again.code, 'START_FAILED')
    assert.match(again.message, /already/)

    await stopController(socket)
    assert.equal(fs.existsSync(socket), false)
    await new Promise((r) => setTimeout(r, 200))
    const e = await failure(stopController(socket))
    assert.equal(e.code, 'CONTROLLER_UNREACHABLE')
  },
)

test(
  'a detached start that cannot open its database reports the reason',
  { skip: !built && 'bin/vstor or dist/commands missing' },
  async (t) => {
    const dir = tempDir(t)
    const dataDir = path.join(dir, 'data')
    fs.mkdirSync(dataDir)
    fs.writeFileSync(path.join(dataDir, 'vstor.db'), crypto.randomBytes(8192))
    const e = await failure(startControllerDetached({ socket: path.join(dir, 's.sock'), dataDir }))
    assert.equal(e.code, 'START_FAILED')
    assert.match(e.message, /restore it from backup/)
  },
)

test(
  'spawnDetached: a child that exits before ready is reported with its exit code and log tail',
  { skip: !built && 'bin/vstor or dist/commands missing' },
  async (t) => {
    const dir = tempDir(t)
    const logFile = path.join(dir, 'x.log')
    const e = await failure(spawnDetached({ args: ['no-such-command'], logFile, readyTimeoutMs: 15_000 }))
    assert.equal(e.code, 'START_FAILED')
    assert.match(e.message, /exited \(code [1-9]/)
    assert.match(e.message, /no-such-command/)
  },
)
