// Sizes past 16 TiB through every layer: CLI size parsing, SQLite, the table,
// the wire codec, FUSE offsets (fuse-native passes them as two 32-bit halves)
// and the device offset arithmetic. A thin 20 TiB disk over a small pool:
// writes near the end land at the deviceOffset that `disk map` reports.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import test from 'node:test'
import { MiB, qemuIoOk, vstorInstance } from '../helpers/instance'
import { backingBytes } from '../helpers/map'

const TiB = 2 ** 40

test('a 20 TiB thin disk: exact size, writes near the end and at odd high offsets land and read back', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(24 * MiB, 'd0', { fill: 0xaa })
  await v.run(['disk', 'create', 'big', '--size', '20T', '--thin'])
  await v.mount()
  const img = v.image('big')
  assert.equal((await fs.promises.stat(img)).size, 20 * TiB)

  const last = 20 * TiB - 4096
  const high = 16 * TiB + 5 * MiB + 12288 // past 2^44: a 32-bit slip would land elsewhere
  await qemuIoOk(img, [`write -P 0x3c ${last} 4k`, `write -P 0x5d ${high} 8k`])
  await qemuIoOk(img, [`read -P 0x3c ${last} 4k`, `read -P 0x5d ${high} 8k`, `read -P 0 ${high - 12288} 12k`, `read -P 0 ${16 * TiB} 4k`])

  const map = await v.diskMap('big')
  assert.equal(map.size, 20 * TiB)
  assert.equal((await v.diskList()).find((d) => d.name === 'big')?.allocated, 2 * MiB, 'one unit per written region')
  const mapped = map.extents.filter((e) => e.device !== null)
  assert.deepEqual(
    mapped.map((e) => [e.offset, e.length]),
    [
      [16 * TiB + 5 * MiB, MiB],
      [20 * TiB - MiB, MiB],
    ],
  )
  const devices = await v.deviceList()
  assert.deepEqual(backingBytes(map, devices, last, 4096), Buffer.alloc(4096, 0x3c))
  assert.deepEqual(backingBytes(map, devices, high, 8192), Buffer.alloc(8192, 0x5d))
})
