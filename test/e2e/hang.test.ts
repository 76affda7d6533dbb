// A backing device that hangs (nbdkit SIGSTOPped under nbdfuse) stalls only the requests mapped
// to it: on the native mapped path a device holds at most a quarter of the agent's FUSE worker
// threads and its other requests queue, so more hung readers than the agent has threads still
// leave a disk on another device answering; once the device is back every reader completes.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { MiB, qemuIoOk, sh, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { pause } from '../helpers/jobs'
import { forceUnmount, killIfOurs } from '../helpers/proc'
import { nativeCounts } from './native-log'

/** nbdkit's file plugin on a Unix socket, shown as a file by nbdfuse; returns the file and nbdkit's pid. */
async function nbdDevice(v: Instance, size: number): Promise<{ file: string; kit: number }> {
  const dir = path.join(v.dir, 'nbd-dev')
  const mnt = path.join(dir, 'nbd')
  fs.mkdirSync(mnt, { recursive: true })
  const backing = v.makeFile(size, 'nbd-backing.bin')
  const sock = path.join(dir, 'sock')
  const kit = v.background('nbdkit', ['-f', '-U', sock, 'file', backing])
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
  return { file, kit: kit.child.pid ?? 0 }
}

/** Threads of pid stuck on the hung device: in the FUSE request to nbdfuse, or waiting for its page. */
function stuckThreads(pid: number): number {
  let n = 0
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
      const wchan = fs.readFileSync(`/proc/${pid}/task/${t}/wchan`, 'utf8')
      if (/\) D /.test(stat) || wchan === 'request_wait_answer') n++
    } catch {
      // the thread ended
    }
  }
  return n
}

test('a hung device stalls only the requests on it (native path: per-device worker cap, queue)', async (t) => {
  const v = await vstorInstance(t)
  const { file, kit } = await nbdDevice(v, 40 * MiB)
  await v.startController()
  await v.run(['device', 'add', file, '--name', 'slow'])
  await v.addDevice(40 * MiB, 'fast')
  await v.run(['disk', 'create', 'h', '--size', '16M', '--device', 'slow'])
  await v.run(['disk', 'create', 'f', '--size', '16M', '--device', 'fast'])
  await v.mount()
  const agent = (await v.status()).agents[0]?.pid ?? 0
  await qemuIoOk(v.image('h'), ['write -P 0x68 0 16M'])
  await sh('dd', [`if=${file}`, 'iflag=nocache', 'count=0']) // reads must reach nbdkit

  const resume = pause(v, kit)
  // More readers than the agent has FUSE worker threads (64), each one 4k O_DIRECT read.
  const readers = v.background('fio', [
    '--name=hung',
    `--filename=${v.image('h')}`,
    '--rw=randread',
    '--bs=4k',
    '--direct=1',
    '--ioengine=psync',
    '--numjobs=80',
    '--io_size=4k',
    '--size=16M',
    '--randrepeat=0',
  ])
  await waitFor('16 agent threads stuck on the hung device', () => stuckThreads(agent) >= 16, 30_000)
  await qemuIoOk(v.image('f'), ['write -P 0x66 0 64k', 'read -P 0x66 0 64k', 'flush'])
  assert.equal(stuckThreads(agent), 16, 'the hung device holds a quarter of the 64 FUSE worker threads, no more')
  assert.equal(readers.child.exitCode, null, 'the readers of the hung device finished while it was stopped')

  resume()
  const r = await readers.done
  assert.equal(r.code, 0, r.stdout + r.stderr)
  await qemuIoOk(v.image('h'), ['read -P 0x68 0 16M'])
  const c = await nativeCounts(v)
  assert.ok(c.queued > 0, `no request waited in the device queue: ${JSON.stringify(c)}`)
})
