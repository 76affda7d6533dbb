// Issue 11 end to end: snapshots of a disk under verified random writes.
// fio (io_uring, QD16, a bssplit from 4k to 1m, crc32c with a verify
// backlog) writes the origin while a snapshot is taken every second, 20 in
// all. Each time fio is paused (SIGSTOP, then nothing of it in flight:
// helpers/pause.ts), snapshotted, the snapshot `cmp`ed against the origin
// image, and resumed. fio reports 0 verify errors; every snapshot still hashes
// as when it was taken after all the later copy-on-write; the tables account
// every byte (helpers/spacecheck.ts). Snapshots go over one controller
// connection (what `vstor disk snapshot` sends) so 20 fit in 20 s.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { connect } from '../../src/protocol/connection'
import { hashFile } from '../helpers/files'
import { pauseIo, rings } from '../helpers/pause'
import { MiB, shOk, sleep, vstorInstance, waitFor } from '../helpers/instance'
import { checkAgainstList, checkDbFile } from '../helpers/spacecheck'

const SNAPSHOTS = 20

test('a snapshot every second under fio verify: each one is the disk at its moment', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(1024 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', '32M', '--thin'])
  await v.mount()
  const img = v.image('o')
  const { conn } = await connect(v.socket, { role: 'cli' })
  v.onCleanup(() => conn.close())

  const fio = v.background('fio', [
    '--name=verify',
    `--filename=${img}`,
    '--rw=randwrite',
    '--bssplit=4k/40:16k/20:64k/20:256k/10:1m/10',
    '--direct=1',
    '--ioengine=io_uring',
    '--iodepth=16',
    '--thread',
    '--verify=crc32c',
    '--verify_fatal=1',
    '--verify_backlog=256',
    '--verify_state_save=0',
    '--time_based',
    '--runtime=300', // an upper bound: SIGINT stops it after the snapshots
  ])
  const pid = fio.child.pid!
  await waitFor('fio completing I/O', () => fio.child.exitCode === null && rings(pid).some((r) => r.cqTail > 64), 30_000, 20)

  const hashes: string[] = []
  const start = Date.now()
  for (let i = 0; i < SNAPSHOTS; i++) {
    await sleep(Math.max(0, start + (i + 1) * 1000 - Date.now())) // pacing: one a second, not a wait for a condition
    if (fio.child.exitCode !== null) assert.fail(`fio exited before snapshot ${i}: ${(await fio.done).stdout}`)
    const resume = await pauseIo(pid, img)
    try {
      await conn.call('disk.snapshot', { name: 'o', snapshot: `s${i}` })
      const snap = v.image(`s${i}`)
      await shOk('cmp', [img, snap])
      hashes.push(await hashFile(snap))
    } finally {
      resume()
    }
  }
  assert.equal(fio.child.exitCode, null, 'fio stopped during the snapshots')
  fio.child.kill('SIGINT')
  const f = await fio.done
  assert.match(f.stdout, /err= 0/, `fio: ${f.stdout}${f.stderr}`)
  assert.doesNotMatch(f.stdout + f.stderr, /verify: bad|verify failed|bad magic|crc32c/i)

  // later writes copied on write: no snapshot changed
  const now: string[] = []
  for (let i = 0; i < SNAPSHOTS; i++) now.push(await hashFile(v.image(`s${i}`)))
  assert.deepEqual(now, hashes)
  const disks = await v.diskList()
  assert.equal(disks.filter((d) => d.origin === 'o' && d.readonly).length, SNAPSHOTS)

  const copy = path.join(v.dir, 'backup.db')
  await v.run(['controller', 'backup', copy])
  const report = await checkDbFile(copy)
  assert.deepEqual([...report.problems, ...checkAgainstList(report, await v.deviceList())], [])
  assert.ok(report.devices[0]!.shared > 0, 'the snapshots share units')
})
