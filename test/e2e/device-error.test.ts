// Issue 3 end to end: a backing device that starts failing. The device is a
// file served by nbdfuse from nbdkit's error filter, which fails every request
// with EIO once an inject file exists. I/O on its extents gets EIO, I/O on the
// healthy device goes on, the agent stays up, and the controller records the
// failure: error extents in the map (persistent, even once the device heals)
// and health "error" on the device. On libfuse3 (the default) the I/O takes the native mapped
// path, which answers EIO itself and has JS send the same device-error fault.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, ioError, qemuIo, qemuIoOk, sh, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { forceUnmount, killIfOurs } from '../helpers/proc'
import type { MapExtent } from '../../src/protocol/messages'
import { nativeCounts } from './native-log'

/** nbdkit (error filter over FILE) on a Unix socket, shown as DIR/nbd/nbd by nbdfuse. */
async function failingDevice(v: Instance, size: number): Promise<{ file: string; inject: string }> {
  const dir = path.join(v.dir, 'nbd-dev')
  const mnt = path.join(dir, 'nbd')
  fs.mkdirSync(mnt, { recursive: true })
  const backing = v.makeFile(size, 'nbd-backing.bin')
  const sock = path.join(dir, 'sock')
  const inject = path.join(dir, 'inject')
  const kit = v.background('nbdkit', [
    '-f',
    '-U',
    sock,
    '--filter=error',
    'file',
    backing,
    'error=EIO',
    'error-rate=100%',
    `error-file=${inject}`,
  ])
  await waitFor('nbdkit socket', () => fs.existsSync(sock), 20_000)
  const pidFile = path.join(dir, 'nbdfuse.pid')
  const fuse = v.background('nbdfuse', ['-P', pidFile, mnt, '--unix', sock])
  v.onCleanup(async () => {
    await forceUnmount(mnt)
    if (fuse.child.pid) killIfOurs(fuse.child.pid, 'nbdfuse')
    if (kit.child.pid) killIfOurs(kit.child.pid, 'nbdkit')
  })
  const file = path.join(mnt, 'nbd')
  await waitFor('nbdfuse file', () => fs.existsSync(pidFile) && fs.existsSync(file), 20_000)
  assert.equal(fs.statSync(file).size, size)
  return { file, inject }
}

/** Drop the page cache of a file so reads reach its server (GNU dd: nocache with count=0). */
const dropCache = (file: string): Promise<unknown> => sh('dd', [`if=${file}`, 'iflag=nocache', 'count=0'])

const EIO = /Input\/output error/

test('a failing device: EIO on its extents, healthy ones work, errors recorded', async (t) => {
  const v = await vstorInstance(t)
  const { file: badFile, inject } = await failingDevice(v, 40 * MiB)
  await v.startController()
  await v.run(['device', 'add', badFile, '--name', 'bad'])
  await v.addDevice(40 * MiB, 'good')
  await v.run(['disk', 'create', 'de', '--size', '64M'])
  await v.mount()
  const img = v.image('de')

  const map0 = await v.diskMap('de')
  const onBad = map0.extents.filter((e) => e.device === 'bad')
  const onGood = map0.extents.filter((e) => e.device === 'good')
  assert.ok(onBad.length > 0 && onGood.length > 0, `the disk spans both devices: ${JSON.stringify(map0.extents)}`)
  const bad = onBad[0] as MapExtent
  const good = onGood[0] as MapExtent
  // Places in the bad extent: one written before the fault, one never touched (not in any cache).
  const badWritten = bad.offset + MiB
  const badWrite2 = bad.offset + 4 * MiB
  const badRead = bad.offset + 9 * MiB
  assert.ok(badRead + MiB <= bad.offset + bad.length, 'the bad extent is large enough')

  await qemuIoOk(img, [`write -P 0x31 ${badWritten} 64k`, `write -P 0x32 ${good.offset + MiB} 64k`])
  await qemuIoOk(img, [`read -P 0x31 ${badWritten} 64k`, `read -P 0x32 ${good.offset + MiB} 64k`])

  fs.writeFileSync(inject, '')
  await dropCache(badFile)

  await t.test('I/O on the failing device gets EIO', async () => {
    const w = await qemuIo(img, [`write -P 0x41 ${badWrite2} 4k`])
    assert.match(ioError(w), EIO, w.stdout + w.stderr)
    const r = await qemuIo(img, [`read ${badRead} 4k`])
    assert.match(ioError(r), EIO, r.stdout + r.stderr)
  })

  await t.test('I/O on the healthy device works and the agent stays up', async () => {
    await qemuIoOk(img, [
      `read -P 0x32 ${good.offset + MiB} 64k`,
      `write -P 0x42 ${good.offset + 2 * MiB} 4k`,
      `read -P 0x42 ${good.offset + 2 * MiB} 4k`,
    ])
    const st = await v.status()
    assert.equal(st.agents.length, 1)
    assert.equal(st.agents[0]?.connected, true)
    assert.ok(fs.existsSync(img))
  })

  await t.test('the map shows error on the failed extents, only on the bad device', async () => {
    const map = await waitFor(
      'error extents in the map',
      async () => {
        const m = await v.diskMap('de')
        return m.extents.some((e) => e.error) ? m : null
      },
      20_000,
    )
    const at = (o: number): MapExtent | undefined => map.extents.find((e) => e.offset <= o && o < e.offset + e.length)
    assert.equal(at(badWrite2)?.error, true, `written range not marked: ${JSON.stringify(map.extents)}`)
    assert.equal(at(badRead)?.error, true, `read range not marked: ${JSON.stringify(map.extents)}`)
    for (const e of map.extents.filter((x) => x.error)) assert.equal(e.device, 'bad', `error extent on ${e.device}`)
  })

  await t.test('device list shows health error on the failing device only', async () => {
    const devs = await waitFor('device health', async () => {
      const d = await v.deviceList()
      return d.find((x) => x.name === 'bad')?.health === 'error' ? d : null
    })
    const b = devs.find((x) => x.name === 'bad')
    assert.equal(b?.health, 'error')
    assert.ok((b?.errors ?? 0) >= 1)
    assert.equal(devs.find((x) => x.name === 'good')?.health, 'ok')
  })

  await t.test('error extents keep failing once the device heals; the rest of it works again', async () => {
    fs.rmSync(inject)
    await dropCache(badFile)
    const r = await qemuIo(img, [`read ${badRead} 4k`])
    assert.match(ioError(r), EIO, r.stdout)
    const untouched = bad.offset + bad.length - MiB
    const map = await v.diskMap('de')
    if (!map.extents.find((e) => e.offset <= untouched && untouched < e.offset + e.length)?.error) {
      await qemuIoOk(img, [`write -P 0x51 ${untouched} 4k`, `read -P 0x51 ${untouched} 4k`])
    }
    await qemuIoOk(img, [`read -P 0x42 ${good.offset + 2 * MiB} 4k`])
  })

  await t.test('the native mapped path (libfuse3) met the errors itself: EIO and the fault, as above', async () => {
    const c = await nativeCounts(v)
    assert.ok(c.errors >= 2, `native device errors: ${JSON.stringify(c)}`)
  })
})
