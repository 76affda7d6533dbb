// The native mapped path's blocking protocol against a real mount (libfuse3, the default): a
// table change over a native request in flight waits for it, a change elsewhere does not, a change
// that only write-protects (a move's fence) waits for writes only; a removed disk's open fds get
// EIO. dev2 is nbdkit behind nbdfuse, so a SIGSTOP holds a native read or write in flight for as
// long as the test likes.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { fuse3Available } from '../../src/agent/frontend/fuse3'
import { unmountAgent } from '../../src/agent/index'
import { BOOST } from '../../src/priority'
import { MiB } from '../../src/size'
import { Flag } from '../../src/table/table'
import { spawnBg } from '../helpers/proc'
import { canMount, ext, setup, sh, waitFor } from './mountkit'

function requireNative(t: import('node:test').TestContext): boolean {
  if (!canMount(t)) return false
  if (fuse3Available()) return true
  if (process.env.CI) throw new Error('native/fuse3 is not built (bin/setup builds it); under CI this is a failure')
  t.skip('needs native/fuse3 built (bin/setup)')
  return false
}

/** Threads of pid whose /proc/PID/task/TID/`file` matches (threads that end meanwhile do not count). */
function threads(pid: number, file: string, match: (text: string) => boolean): number {
  let n = 0
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      if (match(fs.readFileSync(`/proc/${pid}/task/${task}/${file}`, 'utf8'))) n++
    } catch {
      // the thread ended
    }
  }
  return n
}
/** Threads of pid blocked in the kernel (state D). */
const blocked = (pid: number): number => threads(pid, 'stat', (t) => /\) D /.test(t))
/** Threads of pid inside pwrite(2) (a FUSE write waits interruptibly: state S, not D); x86_64's number. */
const writing = (pid: number): number => threads(pid, 'syscall', (t) => t.split(' ')[0] === '18')

/** Whether p settles within ms (the timer does not keep the test process alive). */
const settled = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())])

test('native: a table change waits for the native read in flight in its range, unless it only write-protects; a change elsewhere does not; a write in flight holds even that', async (t) => {
  if (!requireNative(t)) return
  const s = await setup(t, { slowDev2: true })
  await s.startAgent()
  const q = await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x71 2M 64k', s.img])
  assert.equal(q.code, 0, q.out)
  await sh('dd', [`if=${s.dev2}`, 'iflag=nocache', 'count=0']) // the read must reach nbdkit
  const agent = s.child()!.pid!

  process.kill(s.nbdkit, 'SIGSTOP')
  const reader = spawnBg('python3', [
    '-c',
    'import os,sys,mmap; fd=os.open(sys.argv[1], os.O_RDONLY|os.O_DIRECT); m=mmap.mmap(-1, 4096); os.preadv(fd, [m], 2*1048576+8192); sys.stdout.write(m[:4].hex())',
    s.img,
  ])
  await waitFor('the native read blocked on dev2', async () => blocked(agent) >= 1)

  // [0, 1M) on dev1: nothing of it in flight, so the change is applied at once.
  const free = await s.ctl.update('d', 0, MiB, [ext(0, MiB, 1, MiB, Flag.NoWrite)])
  // [2M, 3M) holds the read. No-write over the same places (a move's fence) keeps its answer: no wait.
  const fence = s.ctl.update('d', 2 * MiB, 3 * MiB, [ext(2 * MiB, MiB, 2, MiB, Flag.NoWrite)])
  assert.equal(await settled(fence, 10_000), true, 'a change that only write-protects waited for a read')
  // Anything else there (no-write lifted) waits for it.
  const change = s.ctl.update('d', 2 * MiB, 3 * MiB, [ext(2 * MiB, MiB, 2, MiB)])
  assert.equal(await settled(change, 1000), false, 'the change was applied under a native read in flight')
  process.kill(s.nbdkit, 'SIGCONT')
  const held = await change
  // each ack says when the agent blocked the range and when the change took effect (its clock):
  // the held change's range stayed blocked while the read was stopped (1 s above)
  assert.ok(free.blockedAt! <= free.appliedAt!, JSON.stringify(free))
  assert.ok(held.appliedAt! - held.blockedAt! >= 500, `range blocked only ${held.appliedAt! - held.blockedAt!} ms`)
  assert.ok(free.appliedAt! <= held.blockedAt!, 'one clock, in order')
  const r = await reader.done
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, '71717171')

  // A native write in flight in [3M, 4M): even a change that only write-protects waits for it.
  await sh('dd', [`if=${s.dev2}`, 'iflag=nocache', 'count=0'])
  process.kill(s.nbdkit, 'SIGSTOP')
  const writer = spawnBg('python3', [
    '-c',
    // 512 bytes into a page of dev2 that is not cached: the device file's page is read first
    'import os,sys,mmap; fd=os.open(sys.argv[1], os.O_WRONLY|os.O_DIRECT); m=mmap.mmap(-1, 4096); m.write(b"\\x72"*4096); os.pwritev(fd, [memoryview(m)[:512]], 3*1048576+512)',
    s.img,
  ])
  await waitFor('the native write blocked on dev2', async () => writing(agent) >= 1)
  const protect = s.ctl.update('d', 3 * MiB, 4 * MiB, [ext(3 * MiB, MiB, 2, 2 * MiB, Flag.NoWrite)])
  assert.equal(await settled(protect, 1000), false, 'no-write was applied under a native write in flight')
  process.kill(s.nbdkit, 'SIGCONT')
  await protect
  const w = await writer.done
  assert.equal(w.code, 0, w.stderr)
  const q2 = await sh('qemu-io', ['-f', 'raw', '-c', 'read -P 0x72 3146240 512', s.img])
  assert.equal(q2.code, 0, q2.out)
  await unmountAgent(s.mnt, s.socket)
})

test("agent: its main thread (table changes, faults) runs above the front end's I/O threads", async (t) => {
  if (!requireNative(t)) return
  const s = await setup(t)
  await s.startAgent()
  const pid = s.child()!.pid!
  const nice = (tid: string): number => Number(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16])
  const others = fs.readdirSync(`/proc/${pid}/task`).filter((tid) => tid !== String(pid))
  const main = nice(String(pid))
  assert.equal(main, Math.max(-20, nice(others[0]!) - BOOST), `main thread at nice ${main}`)
  // the libfuse threads serving I/O (and every thread started before the mount) kept the process's nice
  for (const tid of others) assert.equal(nice(tid), nice(others[0]!), `thread ${tid}`)
  await unmountAgent(s.mnt, s.socket)
})

test('native: open fds of a removed disk get EIO; a native write before it landed', async (t) => {
  if (!requireNative(t)) return
  const s = await setup(t)
  await s.startAgent()
  const fh = await fs.promises.open(s.img, 'r+')
  try {
    assert.equal((await fh.write(Buffer.alloc(4096, 0x72), 0, 4096, 4096)).bytesWritten, 4096)
    assert.equal((await fh.read(Buffer.alloc(4096), 0, 4096, 4096)).bytesRead, 4096)
    await s.ctl.removeDisk('d')
    await assert.rejects(fh.read(Buffer.alloc(4096), 0, 4096, 4096), { code: 'EIO' })
    await assert.rejects(fh.write(Buffer.alloc(4096), 0, 4096, 0), { code: 'EIO' })
  } finally {
    await fh.close()
  }
  const dev = await fs.promises.readFile(s.dev1)
  assert.ok(dev.subarray(MiB + 4096, MiB + 8192).every((b) => b === 0x72))
  await unmountAgent(s.mnt, s.socket)
})

test('native: table.update acks keep coming under native reads at QD16, and count the requests served and the writes finished', async (t) => {
  if (!requireNative(t)) return
  const s = await setup(t)
  await s.startAgent()
  // reads only: the flag toggled below (no-write) lets them through, so fio never faults
  // --thread: one process, so SIGKILL ends the jobs too
  const fio = spawnBg(
    'fio',
    [
      ...['--name=load', `--filename=${s.img}`, '--rw=randread', '--bs=4k', '--size=2M', '--thread'],
      ...['--ioengine=libaio', '--iodepth=16', '--direct=1', '--time_based', '--runtime=60'],
    ],
    { timeoutMs: 0 },
  )
  t.after(() => fio.child.kill('SIGKILL'))
  await waitFor('native reads', async () => ((await s.ctl.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])).served ?? 0) > 1000)
  const first = await s.ctl.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])
  // each change blocks [0, 2M) while reads are in flight there, applies, acks with the served count
  const changes = (async () => {
    let last = first
    for (let i = 0; i < 400; i++) last = await s.ctl.update('d', 0, 2 * MiB, [ext(0, 2 * MiB, 1, MiB, i % 2 ? 0 : Flag.NoWrite)])
    return last
  })()
  assert.equal(await settled(changes, 60_000), true, 'a table change under native reads was not acked')
  const last = await changes
  assert.ok(last.served! > first.served!, `served did not grow under fio: ${first.served} -> ${last.served}`)
  assert.equal(last.written, first.written, 'reads are not writes')
  fio.child.kill('SIGKILL')
  await fio.done
  // a write on the native path (a plainly mapped extent) is counted by the next ack
  await s.ctl.update('d', 0, 2 * MiB, [ext(0, 2 * MiB, 1, MiB)])
  const fd = await fs.promises.open(s.img, 'r+')
  await fd.write(Buffer.alloc(4096, 0x33), 0, 4096, 3 * MiB)
  await fd.close()
  const after = await s.ctl.update('d', 0, MiB, [ext(0, MiB, 1, MiB)])
  assert.ok(after.written! > last.written!, `a native write was not counted: ${last.written} -> ${after.written}`)
  await unmountAgent(s.mnt, s.socket)
})
