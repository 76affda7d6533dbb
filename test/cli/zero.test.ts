// `disk create --zero`: documented in --help, refused with --thin before any
// controller is asked, sends zero:true, and turns the controller's 'progress'
// notes into a bar only on a terminal (never into --json output).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { test } from 'node:test'
import { PROTOCOL_VERSION } from '../../src/config'
import { listen } from '../../src/protocol/connection'
import type { DiskInfo } from '../../src/protocol/messages'
import { BIN, ROOT, tempInstance, vstor, vstorAsync } from './run'

const MiB = 2 ** 20

test('disk create --help lists --zero with an example', () => {
  const r = vstor(['disk', 'create', '--help'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /--zero\s+write zeros over the new space/)
  assert.ok(r.stdout.includes('vstor disk create clean --size 10G --zero'))
})

test('--zero with --thin is BAD_ARGUMENT without a controller', () => {
  const inst = tempInstance()
  try {
    const r = vstor(['disk', 'create', 'x', '--size', '1G', '--thin', '--zero', '--json'], inst.env)
    assert.equal(r.code, 1)
    assert.deepEqual(JSON.parse(r.stdout), {
      error: { code: 'BAD_ARGUMENT', message: '--zero is for thick disks; thin disks read zeros until written' },
    })
  } finally {
    fs.rmSync(inst.dir, { recursive: true, force: true })
  }
})

test('progress notes: zero:true reaches the controller; a bar on a terminal, clean JSON otherwise', async (t) => {
  const inst = tempInstance()
  const calls: unknown[] = []
  const server = await listen(inst.socket, (_hello, conn) => {
    conn.onRequest(async (method, params) => {
      const p = params as { name: string; size: number }
      calls.push(params)
      // a stand-in controller that zeroes in four steps
      for (let done = 0; done <= p.size; done += p.size / 4) conn.notify('progress', { op: 'zero', done, total: p.size })
      const info: DiskInfo = {
        name: p.name,
        size: p.size,
        allocated: p.size,
        thin: false,
        generation: 1,
        extents: 1,
        openBy: [],
        origin: null,
        readonly: false,
        exclusive: 0,
        shared: 0,
      }
      return method === 'disk.create' ? info : {}
    })
    return { protocol: PROTOCOL_VERSION, controllerId: 'fake', generation: 0 }
  })
  t.after(async () => {
    await server.close()
    fs.rmSync(inst.dir, { recursive: true, force: true })
  })

  const json = await vstorAsync(['disk', 'create', 'clean', '--size', '8M', '--zero', '--json'], inst.env)
  assert.equal(json.code, 0, json.stderr)
  assert.equal(JSON.parse(json.stdout).allocated, 8 * MiB)
  assert.equal(json.stderr, '', 'no bar when not on a terminal')
  assert.deepEqual(calls.at(-1), { name: 'clean', size: 8 * MiB, zero: true })

  // on a pseudo-terminal (script(1)) the bar draws on stderr
  const cmd = `${process.execPath} ${BIN} disk create tty --size 8M --zero`
  const tty = await new Promise<string>((resolve, reject) =>
    execFile('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: inst.env, encoding: 'utf8', timeout: 30_000 }, (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  )
  assert.match(tty, /zeroing tty \[/)
  assert.match(tty, /created disk tty: 8M, thick, zeroed/)
})
