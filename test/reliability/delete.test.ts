// Issue 8: deleting a disk can never let old bytes or old fds reach a new one.
// The repro from the issue: hold MNT/old.img open, kill -9 the controller,
// start it again, delete old, create new; and a thick disk created over a
// deleted one's space.
//
// Invariants checked: `disk delete` without --force is refused while the
// agent has the disk open, whether the agent is connected or not (the
// controller remembers across its own restart); with --force, the old fd
// gets EIO and the new disk reads zeros; a thick disk created over a deleted
// disk's space reads zeros, even when that space could not be scrubbed.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { MiB, qemuIoOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { backingBytes } from '../helpers/map'
import type { Status } from '../../src/protocol/messages'
import { nbdDevice } from './nbd'

const HOLDER = path.join(__dirname, 'holder.js')

/** A child holding `file` open read-write; ask() sends one command and resolves with its answer line. */
async function holder(v: Instance, file: string): Promise<{ ask(cmd: string): Promise<string> }> {
  const b = v.background(process.execPath, [HOLDER, file], { stdinOpen: true })
  const lines: string[] = []
  const waiters: ((l: string) => void)[] = []
  let rest = ''
  b.child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n')
    rest = parts.pop() ?? ''
    for (const l of parts) (waiters.shift() ?? ((x: string) => void lines.push(x)))(l)
  })
  const next = (): Promise<string> => new Promise((res) => (lines.length ? res(lines.shift()!) : waiters.push(res)))
  assert.equal(await next(), 'open')
  return {
    ask: (cmd) => {
      const p = next()
      b.child.stdin?.write(cmd + '\n')
      return p
    },
  }
}

const caughtUp = (v: Instance): Promise<Status> =>
  waitFor('the agent connected at the controller generation', async () => {
    const s = await v.status()
    return s.agents.length === 1 && s.agents[0]?.connected && s.agents[0].generation === s.controller.generation ? s : null
  })

test('delete after a controller restart: refused while open (agent connected or not); with --force the old fd gets EIO and the new disk is clean', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  await v.startController()
  await v.addDevice(40 * MiB, 'd0')
  await v.run(['disk', 'create', 'old', '--size', '16M'])
  await v.mount()
  const h = await holder(v, v.image('old'))
  assert.equal(await h.ask('w 0 97'), 'ok')
  await waitFor('old open at the controller', async () => (await v.diskList()).find((d) => d.name === 'old')?.openBy.length === 1)
  const agentPid = (await v.status()).agents[0]!.pid

  // The agent cannot reconnect while stopped: the restarted controller only has what it persisted.
  process.kill(agentPid, 'SIGSTOP')
  let stopped = true
  t.after(() => void (stopped && process.kill(agentPid, 'SIGCONT')))
  await v.killController()
  await v.startController()
  const st = await v.status()
  assert.equal(st.agents[0]?.connected, false, 'the stopped agent is known but not connected')
  const r1 = await v.run(['disk', 'delete', 'old'], { expectFail: true, json: true })
  assert.equal(r1.code, 1)
  assert.equal((r1.json as { error: { code: string } }).error.code, 'DISK_OPEN')
  process.kill(agentPid, 'SIGCONT')
  stopped = false

  await caughtUp(v)
  const r2 = await v.run(['disk', 'delete', 'old'], { expectFail: true })
  assert.equal(r2.code, 1)
  assert.match(r2.stderr, /open on agent/)

  await v.run(['disk', 'delete', 'old', '--force'])
  await v.run(['disk', 'create', 'new', '--size', '16M'])
  await caughtUp(v)
  assert.equal(await h.ask('w 4096 98'), 'EIO', 'a write on the fd of the deleted disk')
  assert.equal(await h.ask('r 0'), 'EIO', 'a read on the fd of the deleted disk')
  await qemuIoOk(v.image('new'), ['read -P 0 0 16M'])
  const bytes = backingBytes(await v.diskMap('new'), await v.deviceList(), 0, 16 * MiB)
  assert.ok(
    bytes.every((x) => x === 0),
    'the new disk holds old bytes on its device',
  )
})

test('a thick disk created over a deleted disk reads zeros, also where the space could not be scrubbed', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  // Trims fail: the scrubber can never clean the freed space, so the create must zero it itself.
  const dev = await nbdDevice(v, 'd0', 17 * MiB, { filters: ['error'], params: ['error-trim=EIO', 'error-trim-rate=100%'] })
  await v.startController()
  await v.run(['device', 'add', dev.file, '--name', 'd0'])
  await v.run(['disk', 'create', 'secret', '--size', '16M'])
  await v.mount()
  await qemuIoOk(v.image('secret'), ['write -P 0x5e 0 16M', 'flush'])
  const before = await v.diskMap('secret')
  await v.run(['disk', 'delete', 'secret'])
  await v.run(['disk', 'create', 'next', '--size', '16M'])
  const after = await v.diskMap('next')
  // The pool holds exactly one such disk: the new one sits on the old one's bytes.
  assert.deepEqual(
    after.extents.map((e) => [e.device, e.deviceOffset, e.length]),
    before.extents.map((e) => [e.device, e.deviceOffset, e.length]),
  )
  await caughtUp(v)
  await qemuIoOk(v.image('next'), ['read -P 0 0 16M'])
})
