// Exit codes and error output of the CLI without a controller: the checks a
// user hits first (nothing running, a typo in a flag, a bad size).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { PROTOCOL_VERSION } from '../../src/config'
import { listen } from '../../src/protocol/connection'
import { BIN, ROOT, tempInstance, vstor } from './run'

const STACK = /^\s+at .+[(:]/m

test('no controller: exit 3, the hint on stderr, no stack trace', (t) => {
  const inst = tempInstance()
  t.after(() => fs.rmSync(inst.dir, { recursive: true, force: true }))
  const r = vstor(['disk', 'list'], inst.env)
  assert.equal(r.code, 3)
  assert.match(r.stderr, /^vstor: .*is the controller running\?/)
  assert.ok(r.stderr.includes(inst.socket), 'names the socket it tried')
  assert.doesNotMatch(r.stderr, STACK)
  assert.equal(r.stdout, '')
})

test('no controller under --json: the error as JSON on stdout, exit 3', (t) => {
  const inst = tempInstance()
  t.after(() => fs.rmSync(inst.dir, { recursive: true, force: true }))
  const r = vstor(['status', '--json', '--socket', inst.socket], { ...process.env, NODE_ENV: '' })
  assert.equal(r.code, 3)
  const out = JSON.parse(r.stdout) as { error: { code: string; message: string } }
  assert.equal(out.error.code, 'CONTROLLER_UNREACHABLE')
  assert.match(out.error.message, /is the controller running\?/)
  assert.deepEqual(Object.keys(out.error).sort(), ['code', 'message'])
})

test('unknown flag: usage error, exit 2', (t) => {
  const inst = tempInstance()
  t.after(() => fs.rmSync(inst.dir, { recursive: true, force: true }))
  const r = vstor(['disk', 'list', '--no-such-flag'], inst.env)
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^vstor: Nonexistent flag: --no-such-flag/)
  assert.match(r.stderr, /vstor disk list --help/)
  assert.doesNotMatch(r.stderr, STACK)
})

test('a state outside the choices and a missing required flag are usage errors', (t) => {
  const inst = tempInstance()
  t.after(() => fs.rmSync(inst.dir, { recursive: true, force: true }))
  const bad = vstor(['extent', 'set', 'd', '--offset', '0', '--length', '1M', '--set', 'readonly'], inst.env)
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /invalid, no-write, zero, error/)
  const missing = vstor(['disk', 'create', 'd'], inst.env)
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /^vstor: Missing required flag size/)
})

test('bad size: exit 1 with a clear message, checked before connecting', (t) => {
  const inst = tempInstance()
  t.after(() => fs.rmSync(inst.dir, { recursive: true, force: true }))
  const r = vstor(['disk', 'create', 'd1', '--size', '10X'], inst.env)
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /^vstor: bad --size '10X': .*e\.g\. 10G/)
  assert.doesNotMatch(r.stderr, /controller/, 'failed before trying the socket')
  const j = vstor(['disk', 'create', 'd1', '--size', '10X', '--json'], inst.env)
  assert.equal(j.code, 1)
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'BAD_SIZE')
  const off = vstor(['extent', 'set', 'd1', '--offset', 'x', '--length', '1M', '--set', 'zero'], inst.env)
  assert.equal(off.code, 1)
  assert.match(off.stderr, /^vstor: bad --offset 'x'/)
})

test('unknown command: exit 2', () => {
  const r = vstor(['frobnicate'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^vstor: command frobnicate not found/)
})

test('a socket this user may not open: exit 3 saying it needs root or access to the socket, not to start a controller', async (t) => {
  if (process.getuid?.() !== 0) {
    if (process.env.CI) throw new Error('this test needs root (to run the CLI as nobody); under CI this is a failure')
    return t.skip('needs root (to run the CLI as nobody)')
  }
  const inst = tempInstance()
  fs.chmodSync(inst.dir, 0o755) // nobody may enter the directory; the socket itself is 0600 root
  const server = await listen(inst.socket, () => ({ protocol: PROTOCOL_VERSION, controllerId: 'c', generation: 0 }))
  t.after(async () => {
    await server.close()
    fs.rmSync(inst.dir, { recursive: true, force: true })
  })
  const args = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'status', '--socket', inst.socket]
  const env = { ...inst.env, HOME: path.join(inst.dir, 'home') }
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile('setpriv', args, { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 }, (err, _out, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr }),
    ),
  )
  assert.equal(r.code, 3, r.stderr)
  assert.equal(
    r.stderr,
    `vstor: cannot reach the vstor controller at ${inst.socket}: permission denied: ` +
      'run as root, or as a user that may read and write the socket (mode 0600) and enter its directory\n',
  )
  assert.doesNotMatch(r.stderr, /controller start/)
})
