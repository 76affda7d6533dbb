// Issue 8: backing devices that fail or hang. A device served by nbdkit's
// error filter (EIO on every request while an inject file exists), and one
// served through nbdkit's pause filter (requests hang while paused), both
// shown as files by nbdfuse.
//
// Invariants checked: I/O on a failing device is EIO and the device's health
// becomes error; `vstor device check` fails while it still fails and clears
// health once it works again (error extents stay); with `--io async` a hung
// device stalls only its own disk: disks on other devices, the controller and
// the CLI keep working, and once it is resumed the stalled read completes
// with the right data and everything stops cleanly.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { qemuIoArgs } from '../helpers/proc'
import { MiB, ioError, qemuIo, qemuIoOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { dropCache, nbdDevice, pauseControl } from './nbd'

/** Every *.log in dir, for failure messages. */
const logs = (dir: string): string =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n')

const health = async (v: Instance, name: string): Promise<string | undefined> => (await v.deviceList()).find((d) => d.name === name)?.health

/** Until the scrubber has zeroed every new device (it must not be the one left hanging on a paused device). */
const scrubbed = (v: Instance): Promise<unknown> =>
  waitFor('new devices scrubbed', async () => (await v.deviceList()).every((d) => d.scrubbing === 0))

test('a failing device: EIO and health error; device check clears health once it works again', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  const inject = path.join(v.dir, 'inject')
  const bad = await nbdDevice(v, 'bad', 25 * MiB, { filters: ['error'], params: ['error=EIO', 'error-rate=100%', `error-file=${inject}`] })
  await v.startController()
  await v.run(['device', 'add', bad.file, '--name', 'bad'])
  await v.addDevice(25 * MiB, 'good')
  await scrubbed(v)
  await v.run(['disk', 'create', 'b', '--size', '16M', '--device', 'bad'])
  await v.run(['disk', 'create', 'g', '--size', '16M', '--device', 'good'])
  await v.mount()
  await qemuIoOk(v.image('b'), ['write -P 0x21 0 1M', 'flush'])

  fs.writeFileSync(inject, '')
  await dropCache(bad.file)
  const w = await qemuIo(v.image('b'), ['write -P 0x22 4M 4k', 'flush'])
  assert.match(ioError(w), /Input\/output error/, w.stdout + w.stderr)
  const r = await qemuIo(v.image('b'), ['read 8M 4k'])
  assert.match(ioError(r), /Input\/output error/, r.stdout + r.stderr)
  await qemuIoOk(v.image('g'), ['write -P 0x23 0 1M', 'read -P 0x23 0 1M'])
  await waitFor('health error on the failing device', async () => (await health(v, 'bad')) === 'error')
  assert.equal(await health(v, 'good'), 'ok')

  const still = await v.run(['device', 'check', 'bad'], { expectFail: true, json: true })
  assert.equal(still.code, 1)
  assert.equal((still.json as { error: { code: string } }).error.code, 'DEVICE_INVALID')
  assert.equal(await health(v, 'bad'), 'error', 'a failed check leaves health as it was')

  fs.rmSync(inject)
  await v.run(['device', 'check', 'bad'])
  assert.equal(await health(v, 'bad'), 'ok')
  const map = await v.diskMap('b')
  assert.ok(
    map.extents.some((e) => e.error),
    'the extents marked error stay so until `extent set --clear error`',
  )
})

test('a hung device (nbdkit pause) with --io async: other disks, the controller and the CLI go on; resumed, it finishes cleanly', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  const ctl = path.join(v.dir, 'pause.ctl')
  const slow = await nbdDevice(v, 'slow', 25 * MiB, { filters: ['pause'], params: [`pause-control=${ctl}`] })
  let paused = false
  v.onCleanup(async () => void (paused && (await pauseControl(ctl, 'r').catch(() => undefined))))
  await v.startController()
  await v.run(['device', 'add', slow.file, '--name', 'slow'])
  await v.addDevice(25 * MiB, 'fast')
  await scrubbed(v)
  await v.run(['disk', 'create', 'h', '--size', '16M', '--device', 'slow'])
  await v.run(['disk', 'create', 'f', '--size', '16M', '--device', 'fast'])
  await v.mount(['--io', 'async'])
  await qemuIoOk(v.image('h'), ['write -P 0x31 2M 1M', 'flush'])
  await dropCache(slow.file) // so the read below has to reach nbdkit

  await pauseControl(ctl, 'p')
  paused = true
  const hung = v.background('qemu-io', qemuIoArgs(v.image('h'), ['read -P 0x31 2M 64k']))

  // Everything else goes on while it hangs (each command has its own deadline; none may hang).
  await qemuIoOk(v.image('f'), ['write -P 0x32 0 1M', 'read -P 0x32 0 1M', 'flush'], { timeoutMs: 30_000 })
  const s = await v.status()
  assert.equal(s.agents[0]?.connected, true)
  await qemuIoOk(v.image('f'), ['read -P 0x32 0 1M'], { timeoutMs: 30_000 })
  assert.equal(hung.child.exitCode, null, 'the read on the paused device finished while it was paused')

  await pauseControl(ctl, 'r')
  paused = false
  const res = await hung.done
  assert.equal(res.code, 0, res.stdout + res.stderr)
  assert.doesNotMatch(res.stdout, /fail|mismatch/i)
  await qemuIoOk(v.image('h'), ['write -P 0x33 4M 4k', 'read -P 0x33 4M 4k', 'read -P 0x31 2M 1M'])
  await v.unmount()
  const left = (await v.status()).agents
  assert.deepEqual(left, [], `the agent did not say bye; its log:\n${logs(v.agentsDir)}\ncontroller log:\n${logs(v.dataDir)}`)
})
