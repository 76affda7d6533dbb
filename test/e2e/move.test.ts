// Issue 9 end to end: moving a disk while fio writes to it. fio randwrite
// with a mixed bssplit at QD16 (libaio, O_DIRECT, crc32c headers, each pass
// verifying its own writes) runs over and over on a mounted disk while `disk
// move` takes all of it to another device and back, and `device evacuate`
// empties the first device. Afterwards a separate read-verify pass finds
// every 4 KiB intact, the maps show the expected devices, no physical range is
// owned twice, and `device remove` of the evacuated device succeeds.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import test from 'node:test'
import { CHUNK_MAX } from '../../src/controller/jobs/copy'
import type { DeviceInfo, JobInfo } from '../../src/protocol/messages'
import { MiB, qemuIoOk, vstorInstance } from '../helpers/instance'
import { assertSpaceConsistent, devicesOf, fioFill, fioLoop, fioReadVerify, fioReadVerifyOk, jobList } from '../helpers/jobs'
import { pieces } from '../helpers/map'

const SIZE = 64 * MiB

test('disk move there and back and device evacuate under fio randwrite with verify', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  for (const d of ['d0', 'd1', 'd2']) await v.addDevice(100 * MiB, d)
  await v.run(['disk', 'create', 'v', '--size', '64M', '--device', 'd0'])
  await v.run(['disk', 'create', 'w', '--size', '16M', '--device', 'd0'])
  await v.mount()
  const img = v.image('v')
  await fioFill(img, SIZE)
  await qemuIoOk(v.image('w'), ['write -P 0x5e 0 16M'])

  const writer = fioLoop(v, img, SIZE)
  let jobs: JobInfo[] = []
  try {
    await t.test('disk move --wait takes all of it to d1', async () => {
      const j = (await v.run<JobInfo>(['disk', 'move', 'v', '--to', 'd1', '--wait'], { json: true, timeoutMs: 300_000 })).json
      assert.equal(j.state, 'done')
      assert.equal(j.done, SIZE)
      assert.deepEqual(devicesOf(await v.diskMap('v')), ['d1'])
    })
    await t.test('and back to d0', async () => {
      const j = (await v.run<JobInfo>(['disk', 'move', 'v', '--to', 'd0', '--wait'], { json: true, timeoutMs: 300_000 })).json
      assert.equal(j.state, 'done')
      assert.deepEqual(devicesOf(await v.diskMap('v')), ['d0'])
    })
    await t.test('device evacuate d0 empties it', async () => {
      const j = (await v.run<JobInfo>(['device', 'evacuate', 'd0', '--wait'], { json: true, timeoutMs: 300_000 })).json
      assert.equal(j.state, 'done')
      assert.equal(j.done, SIZE + 16 * MiB)
      for (const d of ['v', 'w']) assert.ok(!devicesOf(await v.diskMap(d)).includes('d0'), `disk ${d} still on d0`)
      const d0 = (await v.deviceList()).find((d) => d.name === 'd0')
      assert.equal(d0?.state, 'evacuated')
    })
  } finally {
    const passes = await writer.stop()
    t.diagnostic(`fio randwrite+verify passes during the moves: ${passes}`)
    assert.ok(passes >= 1, 'no fio pass completed during the moves')
  }

  await t.test('the jobs are listed done, with stall stats', async () => {
    jobs = await jobList(v)
    assert.deepEqual(
      jobs.map((j) => [j.kind, j.disk ?? j.device, j.state]),
      [
        ['move', 'v', 'done'],
        ['move', 'v', 'done'],
        ['evacuate', 'd0', 'done'],
      ],
    )
    for (const j of jobs) {
      assert.ok(j.stats.chunks >= SIZE / CHUNK_MAX, `job ${j.id}: ${j.stats.chunks} chunks`)
      assert.ok(j.stats.stallP50Ms !== null && j.stats.stallP99Ms !== null)
    }
  })

  await t.test('a separate read-verify pass finds every block intact', async () => {
    await fioReadVerifyOk(img, SIZE)
    await qemuIoOk(v.image('w'), ['read -P 0x5e 0 16M'])
  })

  await t.test('no physical range is owned twice; device remove of the evacuated device succeeds', async () => {
    await assertSpaceConsistent(v, ['v', 'w'])
    await v.run(['device', 'remove', 'd0'])
    assert.deepEqual((await v.deviceList()).map((d) => d.name).sort(), ['d1', 'd2'])
    await fioReadVerifyOk(img, SIZE)
  })

  await t.test('the verify pass is not vacuous: one flipped byte on the backing file fails it', async () => {
    const devices: DeviceInfo[] = await v.deviceList()
    const p = pieces(await v.diskMap('v'), devices, 40 * MiB + 100, 1)[0]
    assert.ok(p?.path && p.deviceOffset !== null)
    const fd = fs.openSync(p.path, 'r+')
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, p.deviceOffset)
    fs.writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, p.deviceOffset)
    fs.closeSync(fd)
    const r = await fioReadVerify(img, SIZE)
    assert.match(r.stdout + r.stderr, /verify failed|verify: bad/, 'fio did not notice the flipped byte')
  })
})
