// The CLI against a stand-in controller on a temp socket: --json prints the
// controller's data exactly (the shapes of protocol/messages.ts), human output
// is a table, parameters arrive as the controller expects them (bytes, rounded
// sizes, absolute paths), and a controller error becomes its exit code.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { PROTOCOL_VERSION } from '../../src/config'
import { VstorError } from '../../src/errors'
import { listen } from '../../src/protocol/connection'
import type { DiskInfo, DiskMap } from '../../src/protocol/messages'
import { tempInstance, vstorAsync } from './run'

const GiB = 2 ** 30
const disk: DiskInfo = {
  name: 'vm1',
  size: 20 * GiB,
  allocated: 3 * GiB,
  thin: true,
  generation: 9,
  extents: 4,
  openBy: ['host1:/mnt/vstor'],
  origin: null,
  readonly: false,
  exclusive: 3 * GiB,
  shared: 0,
}
const map: DiskMap = {
  name: 'vm1',
  size: 2 * GiB,
  generation: 9,
  extents: [
    {
      offset: 0,
      length: GiB,
      device: 'pool0',
      deviceOffset: 2 ** 20,
      invalid: false,
      noWrite: true,
      zero: false,
      error: false,
      shared: false,
    },
    { offset: GiB, length: GiB, device: null, deviceOffset: null, invalid: false, noWrite: false, zero: true, error: false, shared: false },
  ],
}

async function fakeController(socket: string, calls: { method: string; params: unknown }[]) {
  return listen(socket, (_hello, conn) => {
    conn.onRequest(async (method, params) => {
      calls.push({ method, params })
      if (method === 'disk.list') return [disk]
      if (method === 'disk.create') return { ...disk, size: (params as { size: number }).size }
      if (method === 'disk.map') throw new VstorError('NOT_FOUND', "no disk named 'nope': see `vstor disk list`")
      if (method === 'extent.set') return map
      if (method === 'device.add')
        throw new VstorError('DEVICE_LABELLED', `${(params as { path: string }).path} carries a vstor label already`)
      throw new VstorError('UNKNOWN_METHOD', method)
    })
    return { protocol: PROTOCOL_VERSION, controllerId: 'fake', generation: 9 }
  })
}

test('CLI output and parameters against a stand-in controller', async (t) => {
  const inst = tempInstance()
  const calls: { method: string; params: unknown }[] = []
  const server = await fakeController(inst.socket, calls)
  t.after(async () => {
    await server.close()
    fs.rmSync(inst.dir, { recursive: true, force: true })
  })

  const json = await vstorAsync(['disk', 'list', '--json'], inst.env)
  assert.equal(json.code, 0, json.stderr)
  assert.deepEqual(JSON.parse(json.stdout), [disk])

  const human = await vstorAsync(['disk', 'list'], inst.env)
  assert.equal(human.code, 0, human.stderr)
  assert.match(human.stdout, /^NAME\s+SIZE\s+ALLOCATED/)
  assert.match(human.stdout, /^vm1\s+20G\s+3G\s+3G\s+0\s+thin\s+-\s+4\s+9\s+host1:\/mnt\/vstor$/m)
  const bytes = await vstorAsync(['disk', 'list', '--bytes'], inst.env)
  assert.match(bytes.stdout, new RegExp(`^vm1\\s+${20 * GiB}\\s+${3 * GiB}\\s`, 'm'))

  const created = await vstorAsync(['disk', 'create', 'vm1', '--size', '1500K', '--device', 'a', '--device', 'b', '--thin'], inst.env)
  assert.equal(created.code, 0, created.stderr)
  assert.deepEqual(calls.at(-1), { method: 'disk.create', params: { name: 'vm1', size: 2 * 2 ** 20, devices: ['a', 'b'], thin: true } })
  assert.match(created.stderr, /rounding size up to 2M/)

  const set = await vstorAsync(
    ['extent', 'set', 'vm1', '--offset', '1G', '--length', '1G', '--set', 'zero', '--clear', 'no-write', '--json'],
    inst.env,
  )
  assert.equal(set.code, 0, set.stderr)
  assert.deepEqual(calls.at(-1), {
    method: 'extent.set',
    params: { name: 'vm1', offset: GiB, length: GiB, set: ['zero'], clear: ['no-write'] },
  })
  assert.deepEqual(JSON.parse(set.stdout), map)

  const missing = await vstorAsync(['disk', 'map', 'nope'], inst.env)
  assert.equal(missing.code, 1)
  assert.equal(missing.stderr, "vstor: no disk named 'nope': see `vstor disk list`\n")
  const missingJson = await vstorAsync(['disk', 'map', 'nope', '--json'], inst.env)
  assert.equal(missingJson.code, 1)
  assert.deepEqual(JSON.parse(missingJson.stdout), { error: { code: 'NOT_FOUND', message: "no disk named 'nope': see `vstor disk list`" } })

  const added = await vstorAsync(['device', 'add', 'rel/pool.img'], { ...inst.env })
  assert.equal(added.code, 1)
  const sent = calls.at(-1)?.params as { path: string }
  assert.ok(path.isAbsolute(sent.path), 'device path sent absolute')
  assert.match(added.stderr, /^vstor: \/.*rel\/pool\.img carries a vstor label already\n$/)
})
