// The native mapped path (libfuse3 worker threads pread/pwrite plainly mapped extents) under table
// changes: fio randwrite with a mixed bssplit at QD16 and crc32c verify keeps the data intact
// while no-write is set and cleared next to it, while a fresh thin disk allocates, and while
// `disk move` remaps it; an fsync after native-only writes syncs them (strace counts fdatasync).
// Each test checks from the agent's log that the native path did serve the I/O.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { JobInfo } from '../../src/protocol/messages'
import { MiB, shOk, vstorInstance, waitFor } from '../helpers/instance'
import { controllerClient, devicesOf, fioFill, fioLoop, fioRandWrite, fioRandWriteThreads, fioReadVerifyOk } from '../helpers/jobs'
import { nativeCounts } from './native-log'

test('native path: no-write set and cleared next to fio randwrite+verify keeps the data intact', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(100 * MiB, 'd0')
  await v.run(['disk', 'create', 'n', '--size', '64M'])
  await v.mount()
  const img = v.image('n')
  const SIZE = 48 * MiB // fio's range; the states change in [48M, 64M)
  await fioFill(img, SIZE)
  const ctl = controllerClient(t, v)
  const writer = fioLoop(v, img, SIZE)
  let flips = 0
  try {
    // As `vstor extent set`, over one connection: each change splits and re-merges the extent fio
    // writes in (the agent reloads its whole native copy), but blocks only the changed range.
    while (writer.passes() < 3 || flips < 100) {
      for (const offset of [48 * MiB, 52 * MiB, 62 * MiB]) {
        await ctl.call('extent.set', { name: 'n', offset, length: 2 * MiB, set: ['no-write'], clear: [] })
        await ctl.call('extent.set', { name: 'n', offset, length: 2 * MiB, set: [], clear: ['no-write'] })
        flips += 2
      }
    }
  } finally {
    const passes = await writer.stop()
    t.diagnostic(`fio passes: ${passes}, no-write changes: ${flips}`)
  }
  await fioReadVerifyOk(img, SIZE)
  const c = await nativeCounts(v)
  assert.ok(c.reads > 0 && c.writes > 0, `native path unused: ${JSON.stringify(c)}`)
})

test('native path: fio randwrite+verify on a fresh thin disk while it allocates', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(100 * MiB, 'd0')
  await v.run(['disk', 'create', 'th', '--size', '64M', '--thin'])
  await v.mount()
  const img = v.image('th')
  await fioRandWrite(img, 64 * MiB) // each pass verifies its own writes
  await fioRandWrite(img, 64 * MiB)
  await fioReadVerifyOk(img, 64 * MiB)
  const c = await nativeCounts(v)
  assert.ok(c.reads > 0 && c.writes > 0, `native path unused: ${JSON.stringify(c)}`)
})

test('native path: four writer threads on one image (parallel direct writes) on a fresh thin disk keep their data', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(100 * MiB, 'd0')
  await v.run(['disk', 'create', 'th4', '--size', '64M', '--thin'])
  await v.mount()
  const img = v.image('th4')
  await fioRandWriteThreads(img, 64 * MiB) // allocating: first writes fault
  await fioRandWriteThreads(img, 64 * MiB) // mapped: the native path
  await fioReadVerifyOk(img, 64 * MiB)
  const c = await nativeCounts(v)
  assert.ok(c.writes > 0, `native path unused: ${JSON.stringify(c)}`)
})

test('native path: disk move under fio randwrite+verify', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(100 * MiB, 'd0')
  await v.addDevice(100 * MiB, 'd1')
  await v.run(['disk', 'create', 'm', '--size', '32M', '--device', 'd0'])
  await v.mount()
  const img = v.image('m')
  await fioFill(img, 32 * MiB)
  const writer = fioLoop(v, img, 32 * MiB)
  try {
    for (const to of ['d1', 'd0']) {
      const j = (await v.run<JobInfo>(['disk', 'move', 'm', '--to', to, '--wait'], { json: true, timeoutMs: 300_000 })).json
      assert.equal(j.state, 'done')
      assert.deepEqual(devicesOf(await v.diskMap('m')), [to])
    }
  } finally {
    t.diagnostic(`fio passes during the moves: ${await writer.stop()}`)
  }
  await fioReadVerifyOk(img, 32 * MiB)
  const c = await nativeCounts(v)
  assert.ok(c.reads > 0 && c.writes > 0, `native path unused: ${JSON.stringify(c)}`)
})

/** fdatasync calls strace saw so far. */
const syncs = (file: string): number => (fs.existsSync(file) ? (fs.readFileSync(file, 'utf8').match(/fdatasync\(/g) ?? []).length : 0)

test('native path: an fsync after native-only writes makes them durable (fdatasync), an idle one does not', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(40 * MiB, 'd0')
  await v.run(['disk', 'create', 'f', '--size', '8M'])
  await v.mount()
  const img = v.image('f')
  const pid = (await v.status()).agents[0]?.pid ?? 0
  assert.ok(pid > 0)
  const out = path.join(v.dir, 'strace.out')
  const tracer = v.background('strace', ['-f', '-qq', '-e', 'trace=fdatasync', '-o', out, '-p', String(pid)])
  // strace is attached once the traced threads show its pid as their tracer
  await waitFor('strace attached', () => /TracerPid:\s*[1-9]/.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 20_000)
  const py = (code: string): Promise<unknown> =>
    shOk('python3', [
      '-c',
      `import os,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_DIRECT); m=__import__('mmap').mmap(-1, 4096); m.write(b'v'*4096); ${code}`,
      img,
    ])
  await py('os.pwrite(fd, m, 0); os.fsync(fd)')
  await waitFor('a fdatasync after native writes', () => syncs(out) >= 1, 20_000)
  const after = syncs(out)
  await py('os.fsync(fd)') // nothing written since: no device sync
  await py('os.pwrite(fd, m, 1048576); os.fsync(fd)')
  await waitFor('a second fdatasync', () => syncs(out) > after, 20_000)
  assert.equal(syncs(out), after + 1, 'the idle fsync synced nothing')
  tracer.child.kill('SIGINT')
  await tracer.done
  const c = await nativeCounts(v)
  assert.ok(c.writes >= 2, `the writes did not take the native path: ${JSON.stringify(c)}`)
})
