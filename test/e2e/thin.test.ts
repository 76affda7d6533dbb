// Issue 3 end to end: thin provisioning under load. fio with crc32c
// verification over a fresh thin disk passes, leaves no overlapping extents on
// the device and allocates exactly what was written; a thin disk larger than
// its pool fails cleanly with ENOSPC when the pool is full and goes on once a
// device is added.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { MiB, qemuIoOk, sh } from '../helpers/instance'
import { testOnFrontends } from './frontends'
import { deviceOverlaps, mapProblem } from '../helpers/map'

testOnFrontends('fio randwrite with verify on a fresh thin disk', async (t, instance) => {
  const v = await instance()
  await v.startController()
  await v.addDevice(100 * MiB, 'd0')
  await v.run(['disk', 'create', 'th', '--size', '64M', '--thin'])
  await v.run(['disk', 'create', 'other', '--size', '8M', '--thin'])
  await v.mount()
  const img = v.image('th')
  // Another thin disk allocating at the same time must not get the same units.
  const other = v.background('qemu-io', [
    '-f',
    'raw',
    ...Array.from({ length: 8 }, (_, i) => ['-c', `write -P 0x${(0x30 + i).toString(16)} ${i * MiB + 4096} 4k`]).flat(),
    v.image('other'),
  ])

  const fio = await sh(
    'fio',
    [
      '--name=t',
      `--filename=${img}`,
      '--rw=randwrite',
      '--bs=4k',
      '--direct=1',
      '--ioengine=libaio',
      '--iodepth=32',
      '--verify=crc32c',
      '--verify_fatal=1',
      '--verify_state_save=0',
      '--size=64M',
    ],
    { timeoutMs: 600_000 },
  )
  assert.equal(fio.code, 0, `fio failed:\n${fio.stdout}\n${fio.stderr}`)
  assert.doesNotMatch(fio.stdout + fio.stderr, /verify: bad|crc32c: verify failed|err=\s*[1-9]/)
  const o = await other.done
  assert.equal(o.code, 0, o.stdout + o.stderr)
  assert.doesNotMatch(o.stdout, /failed/)

  const maps = [await v.diskMap('th'), await v.diskMap('other')]
  for (const m of maps) assert.equal(mapProblem(m), '')
  assert.deepEqual(deviceOverlaps(maps), [])
  const disks = await v.diskList()
  const th = disks.find((d) => d.name === 'th')
  // fio's random map writes every 4k block once: every unit is written.
  assert.equal(th?.allocated, 64 * MiB)
  assert.ok((th?.allocated ?? 0) <= (th?.size ?? 0))
  assert.equal(disks.find((d) => d.name === 'other')?.allocated, 8 * MiB)
  await qemuIoOk(
    v.image('other'),
    Array.from({ length: 8 }, (_, i) => `read -P 0x${(0x30 + i).toString(16)} ${i * MiB + 4096} 4k`),
  )
  await qemuIoOk(v.image('other'), ['read -P 0 0 4k', `read -P 0 ${7 * MiB + 8192} ${MiB - 8192}`])
})

testOnFrontends('a thin disk larger than its pool: ENOSPC when full, more writes after device add', async (t, instance) => {
  const v = await instance()
  await v.startController(['--no-space-timeout', '1s'])
  await v.addDevice(20 * MiB, 'd0')
  await v.run(['disk', 'create', 'big', '--size', '64M', '--thin'])
  await v.mount()
  const img = v.image('big')
  const capacity = (await v.deviceList())[0]?.capacity ?? 0
  assert.ok(capacity > 0 && capacity < 64 * MiB)

  const src = v.makeFile(64 * MiB, 'pattern.bin', { fill: 0x5c })
  const dd = await sh('dd', [`if=${src}`, `of=${img}`, 'bs=1M', 'count=64', 'oflag=direct', 'conv=notrunc'])
  assert.notEqual(dd.code, 0, `dd filled 64M into a ${capacity}-byte pool: ${dd.stderr}`)
  assert.match(dd.stderr, /No space left on device/)
  const copied = Number(/(\d+) bytes/.exec(dd.stderr)?.[1] ?? NaN)
  assert.ok(copied >= 0 && copied <= capacity, `dd copied ${copied} bytes into a pool of ${capacity}`)

  await t.test('the controller still answers and accounts the pool as full', async () => {
    const st = await v.status()
    assert.ok(st.controller.pid > 0)
    const d0 = (await v.deviceList())[0]
    assert.equal(d0?.free, 0)
    const big = (await v.diskList()).find((d) => d.name === 'big')
    assert.equal(big?.allocated, capacity)
  })

  await t.test('what was written before the pool filled reads back', async () => {
    const whole = Math.floor(copied / MiB) * MiB
    if (whole > 0) await qemuIoOk(img, [`read -P 0x5c 0 ${whole}`])
  })

  await t.test('after device add, more writes succeed', async () => {
    await v.addDevice(40 * MiB, 'd1')
    const r = await sh('dd', [
      `if=${src}`,
      `of=${img}`,
      'bs=1M',
      'count=10',
      `seek=${Math.ceil(capacity / MiB)}`,
      'oflag=direct',
      'conv=notrunc',
    ])
    assert.equal(r.code, 0, r.stderr)
    await qemuIoOk(img, ['write -P 0x6d 50M 1M', 'read -P 0x6d 50M 1M', `read -P 0x5c ${Math.ceil(capacity / MiB) * MiB} 10M`])
    const maps = [await v.diskMap('big')]
    assert.deepEqual(deviceOverlaps(maps), [])
    assert.ok(maps[0]?.extents.some((e) => e.device === 'd1'))
    assert.ok(fs.statSync(img).size === 64 * MiB)
  })
})
