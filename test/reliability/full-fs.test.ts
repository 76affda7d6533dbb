// Issue 8: a backing file system that fills up. The device is a 64 MiB sparse
// file on a 16 MiB tmpfs that also holds a 10 MiB filler: thin allocations
// reserve host space, and the file system runs out long before the pool.
//
// Invariants checked: a first write that cannot get host space fails with
// ENOSPC, not EIO; the device stays healthy and nothing is marked error; the
// units of the failed allocation go back to the pool (free = capacity -
// allocated); once space is freed on the host, writes work again.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, ioError, qemuIo, qemuIoOk, sh, vstorInstance, waitFor } from '../helpers/instance'
import { forceUnmount } from '../helpers/proc'

test('a full backing file system: ENOSPC for the write, the device stays healthy, the units go back, space freed means writes work', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  const host = path.join(v.dir, 'small-fs')
  fs.mkdirSync(host)
  const m = await sh('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'vstor-test', host])
  assert.equal(m.code, 0, m.stderr)
  v.onCleanup(async () => void (await forceUnmount(host))) // after vstor let go of the device file
  const filler = path.join(host, 'filler')
  fs.writeFileSync(filler, Buffer.alloc(10 * MiB, 1))
  const file = path.join(host, 'device.bin')
  fs.writeFileSync(file, '')
  fs.truncateSync(file, 64 * MiB)

  await v.startController(['--no-space-timeout', '1s'])
  await v.run(['device', 'add', file, '--name', 'small'])
  await waitFor('the new device scrubbed', async () => (await v.deviceList())[0]?.scrubbing === 0)
  await v.run(['disk', 'create', 'th', '--size', '32M', '--thin'])
  await v.mount()
  const img = v.image('th')

  let full = -1
  for (let unit = 0; unit < 32; unit++) {
    const r = await qemuIo(img, [`write -P 0x${(0x40 + unit).toString(16)} ${unit}M 64k`])
    const err = ioError(r)
    if (!err) continue
    assert.match(err, /No space left on device/, `unit ${unit}: ${r.stdout}${r.stderr}`)
    full = unit
    break
  }
  assert.ok(full > 0 && full < 10, `the host file system filled after ${full} units`)

  const dev = (await v.deviceList())[0]!
  assert.equal(dev.health, 'ok')
  assert.equal(dev.errors, 0)
  const disk = (await v.diskList()).find((d) => d.name === 'th')!
  assert.equal(disk.allocated, full * MiB, 'only the units that got space are mapped')
  assert.equal(dev.free, dev.capacity - disk.allocated, 'the failed allocation gave its units back')
  assert.ok(!(await v.diskMap('th')).extents.some((e) => e.error), 'nothing marked error')

  fs.rmSync(filler)
  await qemuIoOk(img, [`write -P 0x7a ${full}M 64k`, `read -P 0x7a ${full}M 64k`, `read -P 0 ${full * MiB + 65536} 960k`])
  await qemuIoOk(img, [`write -P 0x7b ${full + 1}M 1M`, `read -P 0x7b ${full + 1}M 1M`, 'read -P 0x40 0 64k'])
  assert.equal((await v.deviceList())[0]?.health, 'ok')
})
