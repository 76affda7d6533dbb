// Issue 11 end to end: two agents (mountpoints, --agent-id a and b) with the
// same origin open. A snapshot returns only once both applied it (SNAP.img is
// on both mounts when the command returns). With b stopped (SIGSTOP) and the
// controller's --agent-timeout 2s, a snapshot fails naming b, and nothing
// changes: no snapshot disk, the origin's map, the pool and the origin's data
// as before. Once b runs again (SIGCONT, also in t.after) it catches up and
// snapshots work again on both mounts.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { DiskMap } from '../../src/protocol/messages'
import { MiB, qemuIoOk, sh, vstorInstance, waitFor } from '../helpers/instance'

/** The map without generations (they move on with every push). */
const shape = (m: DiskMap) => m.extents

test('a snapshot waits for every agent; one that does not answer fails it, named, and nothing changes', async (t) => {
  let stopped = 0
  t.after(() => {
    if (stopped) process.kill(stopped, 'SIGCONT') // before the instance's teardown (after hooks run in order)
  })
  const v = await vstorInstance(t)
  await v.startController(['--agent-timeout', '2s'])
  await v.addDevice(64 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', '8M'])
  await v.mount(['--agent-id', 'a'])
  const mntB = path.join(v.dir, 'mnt-b')
  fs.mkdirSync(mntB)
  v.trackMount(mntB)
  await v.run(['mount', mntB, '--agent-id', 'b'])
  const onB = (name: string) => path.join(mntB, `${name}.img`)
  await qemuIoOk(v.image('o'), ['write -P 0x3c 0 8M'])

  // The images are held open by children, not by this process: while b is stopped, closing an fd
  // on its mount blocks in FUSE_FLUSH, and every exec of a child of ours closes the inherited ones.
  for (const img of [v.image('o'), onB('o')]) v.background('sh', ['-c', `exec 3<"${img}"; exec sleep 600`])
  await waitFor('o open on a and b', async () => {
    const o = (await v.diskList()).find((d) => d.name === 'o')
    return o?.openBy.slice().sort().join(',') === 'a,b'
  })

  await v.run(['disk', 'snapshot', 'o', 's'])
  assert.ok(fs.existsSync(v.image('s')) && fs.existsSync(onB('s')), 's.img on both mounts when the snapshot returned')

  const agentB = (await v.status()).agents.find((a) => a.id === 'b')!
  const before = { map: shape(await v.diskMap('o')), devices: await v.deviceList() }
  process.kill(agentB.pid, 'SIGSTOP')
  stopped = agentB.pid
  let r
  try {
    r = await v.run(['disk', 'snapshot', 'o', 's2'], { expectFail: true })
  } finally {
    process.kill(agentB.pid, 'SIGCONT') // at once: anything on this host that stats every mount waits for b meanwhile
    stopped = 0
  }
  // only b is named
  assert.match(r.stderr, /snapshot 's2' of disk 'o': agent b \(connected\) at generation \d+ did not apply/)

  assert.deepEqual((await v.diskList()).map((d) => d.name).sort(), ['o', 's'])
  await waitFor('s2.img gone from a', () => !fs.existsSync(v.image('s2')))
  assert.deepEqual(shape(await v.diskMap('o')), before.map)
  assert.deepEqual(await v.deviceList(), before.devices)
  await qemuIoOk(v.image('o'), ['read -P 0x3c 0 8M'])
  const snapRead = await sh('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x3c 0 8M', v.image('s')])
  assert.doesNotMatch(snapRead.stdout + snapRead.stderr, /fail|mismatch/i)

  await waitFor('b caught up', async () => {
    const st = await v.status()
    return st.agents.find((a) => a.id === 'b')?.generation === st.controller.generation
  })
  assert.deepEqual(fs.readdirSync(mntB).sort(), ['o.img', 's.img'])
  await v.run(['disk', 'snapshot', 'o', 's3'])
  assert.ok(fs.existsSync(v.image('s3')) && fs.existsSync(onB('s3')), 's3.img on both mounts')
})
