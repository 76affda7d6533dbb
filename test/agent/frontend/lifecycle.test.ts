// Fuse3's mount life: a killed server leaves a dead mount (ENOTCONN) that t.after clears; a
// SIGTERM-style unmount answers the request in flight before the mount goes away.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { isMounted, spawnBg } from '../../helpers/proc'
import { serve } from './child'

test('fuse3: a server killed with -9 leaves the mount answering ENOTCONN', async (t) => {
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'a.img', size: 4096 }] })
  assert.equal((await fs.promises.stat(path.join(s.mnt, 'a.img'))).size, 4096)
  s.child.kill('SIGKILL')
  await s.exited
  await assert.rejects(fs.promises.stat(s.mnt), { code: 'ENOTCONN' })
  assert.ok(isMounted(s.mnt), 'the dead mount stays until someone clears it (t.after does)')
})

test('fuse3: SIGTERM unmount answers the read in flight first, then the mount goes away', async (t) => {
  const held = 8192
  const s = await serve(t, { frontend: 'fuse3', files: [{ name: 'a.img', size: 65536 }], holdReadsAt: held })
  const file = path.join(s.mnt, 'a.img')
  const data = crypto.randomBytes(4096)
  const fh = await fs.promises.open(file, 'r+')
  await fh.write(data, 0, data.length, held) // writes are not held
  await fh.close()

  // A reader whose pread is held by the handler; it prints what it got and exits without close().
  const reader = spawnBg('python3', [
    '-c',
    'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); d=os.pread(fd, 4096, int(sys.argv[2])); sys.stdout.write(d.hex()); sys.stdout.flush(); os._exit(0)',
    file,
    String(held),
  ])
  assert.equal((await s.next('held')).pos, held)

  s.child.kill('SIGTERM')
  await s.next('unmounting')
  assert.ok(isMounted(s.mnt), 'still mounted while a request is in flight')
  s.send({ cmd: 'release' })
  const r = await reader.done
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, data.toString('hex'), 'the held read got its data')
  const x = await s.exited
  assert.equal(x.code, 0)
  assert.equal(isMounted(s.mnt), false, 'unmounted once the loop ended')
})
