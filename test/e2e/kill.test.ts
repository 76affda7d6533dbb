// A kill -9'd agent (libfuse3 has no auto_unmount without fusermount3) leaves its mount answering
// ENOTCONN; `vstor mount` on the same mountpoint clears it and serves again, and so does
// `vstor unmount`, with no manual umount. A non-vstor mount there is left alone.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, isMounted, pidDead, qemuIoOk, shOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'

async function killAgent(v: Instance): Promise<void> {
  const pid = (await v.status()).agents.find((a) => a.mountpoint === v.mnt)?.pid ?? 0
  assert.ok(pid > 0, 'agent pid in status')
  process.kill(pid, 'SIGKILL')
  await waitFor('the agent to die', () => pidDead(pid), 10_000)
  // ENOTCONN (ECONNABORTED had the connection been aborted through /sys/fs/fuse/connections)
  await assert.rejects(fs.promises.stat(v.mnt), (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN' || e.code === 'ECONNABORTED')
}

test('a kill -9ed agent: vstor mount and vstor unmount clear its dead mount themselves', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(40 * MiB, 'd0')
  await v.run(['disk', 'create', 'k', '--size', '8M'])
  await v.mount()
  const img = v.image('k')
  await qemuIoOk(img, ['write -P 0x4b 1M 64k'])

  await killAgent(v)
  await v.run(['mount', v.mnt]) // not v.mount(): its mkdir -p would hit the dead mount
  await qemuIoOk(img, ['read -P 0x4b 1M 64k', 'write -P 0x4c 2M 4k'])
  assert.equal((await v.status()).agents.filter((a) => a.connected).length, 1)

  await killAgent(v)
  await v.unmount()
  assert.equal(isMounted(v.mnt), false)
  await v.mount()
  await qemuIoOk(img, ['read -P 0x4b 1M 64k', 'read -P 0x4c 2M 4k'])

  await t.test('another file system on the mountpoint is left alone', async () => {
    await v.unmount()
    await shOk('mount', ['-t', 'tmpfs', '-o', 'size=1M', 'vstor-test', v.mnt])
    v.trackMount(v.mnt)
    const m = await v.run(['mount', v.mnt], { expectFail: true })
    assert.match(m.stderr, /already a mount point \(tmpfs\)/)
    const u = await v.run(['unmount', v.mnt], { expectFail: true })
    assert.match(u.stderr, /tmpfs mount, not vstor/)
    assert.equal(isMounted(v.mnt), true)
    assert.deepEqual(await fs.promises.readdir(path.join(v.mnt)), [])
    await shOk('umount', [v.mnt])
  })
})
