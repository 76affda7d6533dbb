// Issue 8: online backup and restore of the controller database, and the
// modes of what the controller keeps on disk.
//
// Invariants checked: `vstor controller backup FILE` works while the
// controller runs and agents open, close and allocate (the copy is 0600 and
// passes integrity_check); `sqlite3 vstor.db .backup` works online too (the
// database is not held in exclusive locking mode); a restore (stop, copy
// back, start) brings back the same disks and maps, and space that disks
// created after the backup wrote is never handed out unzeroed; the data dir
// is 0700 and every file in it 0600.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, pidDead, qemuIoOk, sh, vstorInstance, waitFor } from '../helpers/instance'

const integrity = async (file: string): Promise<string> =>
  (await sh('sqlite3', ['-readonly', file, 'PRAGMA integrity_check'])).stdout.trim()
const mode = (f: string): number => fs.statSync(f).mode & 0o777

test('online backups while agents work, a restore that brings the same disks back, and root-only files', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  await v.startController()
  await v.addDevice(25 * MiB, 'd0') // 24 MiB of data: 'a' and 'b', and 16 MiB 'late' after the backup
  await waitFor('scrubbed', async () => (await v.deviceList())[0]?.scrubbing === 0)
  await v.run(['disk', 'create', 'a', '--size', '4M'])
  await v.run(['disk', 'create', 'b', '--size', '4M', '--thin'])
  await v.mount()
  await qemuIoOk(v.image('a'), ['write -P 0x61 0 4M', 'flush'])
  await qemuIoOk(v.image('b'), ['write -P 0x62 1M 4k', 'flush'])

  await t.test('controller backup and sqlite3 .backup work online, under load', async () => {
    // Opening and closing images (agent records saved) and first writes (allocations) meanwhile.
    let stop = false
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await v.qemuIo(v.image('b'), [`write -P 0x62 ${(i % 3) + 1}M 4k`, 'read 0 4k'])
        assert.equal(r.code, 0, r.stdout + r.stderr)
      }
    })()
    try {
      for (let i = 0; i < 10; i++) {
        const file = path.join(v.dir, `online-${i}.db`)
        await v.run(['controller', 'backup', file])
        assert.equal(mode(file), 0o600)
        assert.equal(await integrity(file), 'ok')
      }
      const copy = path.join(v.dir, 'sqlite3.db')
      const r = await sh('sqlite3', [path.join(v.dataDir, 'vstor.db'), `.backup ${copy}`])
      assert.equal(r.code, 0, `sqlite3 .backup on the live database: ${r.stderr}`)
      assert.equal(await integrity(copy), 'ok')
    } finally {
      stop = true
      await load
    }
  })

  await t.test('the data dir is 0700 and everything in it 0600', async () => {
    assert.equal(mode(v.dataDir), 0o700)
    const files = fs.readdirSync(v.dataDir)
    for (const f of ['vstor.db', 'vstor.db-wal', 'vstor.db-shm', 'controller.log', 'controller.lock']) assert.ok(files.includes(f), f)
    for (const f of files) assert.equal(mode(path.join(v.dataDir, f)).toString(8), '600', f)
  })

  await t.test("the agent's log and pid files are 0600", async () => {
    const files = fs.readdirSync(v.agentsDir)
    assert.ok(
      files.some((f) => f.endsWith('.log')),
      `an agent log in ${v.agentsDir}: ${files.join(', ')}`,
    )
    for (const f of files) assert.equal(mode(path.join(v.agentsDir, f)).toString(8), '600', f)
  })

  await t.test('restore: the same disks and maps come back; space written after the backup is zeroed before reuse', async () => {
    const backup = path.join(v.dir, 'restore-me.db')
    await v.run(['controller', 'backup', backup])
    const disks = (await v.diskList()).map((d) => [d.name, d.size, d.thin, d.allocated])
    const maps = [await v.diskMap('a'), await v.diskMap('b')]
    // After the backup: a disk over the rest of the pool, full of a secret.
    await v.run(['disk', 'create', 'late', '--size', '16M'])
    await qemuIoOk(v.image('late'), ['write -P 0x5e 0 16M', 'flush'])
    await v.unmount()
    const pid = (await v.status()).controller.pid
    await v.stopController()
    // stop returns once the process is gone: its last checkpoint cannot land on the copy below
    assert.equal(pidDead(pid), true, 'controller stop returned before the controller exited')
    for (const f of ['vstor.db-wal', 'vstor.db-shm']) fs.rmSync(path.join(v.dataDir, f), { force: true })
    fs.copyFileSync(backup, path.join(v.dataDir, 'vstor.db'))
    await v.startController()
    assert.deepEqual(
      (await v.diskList()).map((d) => [d.name, d.size, d.thin, d.allocated]),
      disks,
    )
    assert.deepEqual([await v.diskMap('a'), await v.diskMap('b')], maps)
    await v.mount()
    await qemuIoOk(v.image('a'), ['read -P 0x61 0 4M'])
    // The restored database does not know 'late' wrote there: a new disk over that space reads zeros.
    await v.run(['disk', 'create', 'next', '--size', '16M'])
    const r = await v.qemuIo(v.image('next'), ['read -P 0 0 16M'])
    assert.equal(r.code, 0, r.stderr)
    assert.doesNotMatch(r.stdout, /mismatch|fail/i, 'the new disk shows what a disk the backup never knew wrote')
    await qemuIoOk(v.image('b'), ['read -P 0x62 1M 4k'])
  })
})
