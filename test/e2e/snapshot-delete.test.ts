// Issue 11 end to end: an origin, its snapshot and a clone of the snapshot,
// each written after the sharing (copy on write on both writable sides, a
// first write into a zero unit of the clone), deleted in every order:
// origin first, snapshot first, clone first. After each delete the disks left
// read what they held (deleting an origin keeps its snapshot intact); after
// the last, `device list` free space is exactly where it started once the
// quarantine settled. The controller restarts with the shares in place (its
// start-time integrity check must accept them) and again at the end; the
// tables account every byte before and after (helpers/spacecheck.ts).

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { ioFailed, MiB, qemuIoOk, sh, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { checkAgainstList, checkDbFile } from '../helpers/spacecheck'

/** What each disk must read: [offset, length, pattern] runs (the rest of 16M is unchecked). */
const EXPECT: Record<string, [number, number, number][]> = {
  o: [
    [0, 2 * MiB, 0xa1],
    [2 * MiB, 4096, 0xb1],
    [2 * MiB + 4096, 4 * MiB - 4096, 0xa1],
    [10 * MiB, MiB, 0],
  ],
  s: [
    [0, 6 * MiB, 0xa1],
    [10 * MiB, MiB, 0],
  ],
  c: [
    [0, MiB, 0xa1],
    [MiB, 4096, 0xc1],
    [MiB + 4096, 5 * MiB - 4096, 0xa1],
    [10 * MiB, 4096, 0xc2],
    [10 * MiB + 4096, MiB - 4096, 0],
  ],
}

/** qemu-io -r (a snapshot cannot be opened for writing): every run reads its pattern. */
async function readsAsExpected(v: Instance, name: string): Promise<void> {
  const cmds = EXPECT[name]!.flatMap(([off, len, pat]) => ['-c', `read -P ${pat} ${off} ${len}`])
  const r = await sh('qemu-io', ['-r', '-f', 'raw', ...cmds, v.image(name)])
  assert.ok(r.code === 0 && !ioFailed(r), `${name}: ${r.stdout}${r.stderr}`)
}

async function checkTables(v: Instance, file: string): Promise<void> {
  await v.run(['controller', 'backup', file])
  const report = await checkDbFile(file)
  assert.deepEqual([...report.problems, ...checkAgainstList(report, await v.deviceList())], [])
}

test('delete origin, snapshot and clone in every order: the pool gets back exactly what it had', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(64 * MiB, 'd0')
  await v.mount()
  const free = async () => (await v.deviceList())[0]!
  await waitFor('the new device scrubbed', async () => (await free()).scrubbing === 0)
  const start = await free()
  assert.equal(start.free, start.capacity)

  for (const order of [
    ['o', 's', 'c'],
    ['s', 'c', 'o'],
    ['c', 'o', 's'],
  ]) {
    await t.test(`delete ${order.join(', ')}`, async () => {
      await v.run(['disk', 'create', 'o', '--size', '16M', '--thin'])
      await qemuIoOk(v.image('o'), ['write -P 0xa1 0 6M'])
      await v.run(['disk', 'snapshot', 'o', 's'])
      await v.run(['disk', 'clone', 's', 'c'])
      await qemuIoOk(v.image('o'), [`write -P 0xb1 ${2 * MiB} 4k`])
      await qemuIoOk(v.image('c'), [`write -P 0xc1 ${MiB} 4k`, `write -P 0xc2 ${10 * MiB} 4k`])
      for (const n of ['o', 's', 'c']) await readsAsExpected(v, n)
      // 6M shared by three, one unit copied on each writable side, one new unit in the clone
      assert.equal((await free()).free, start.free - 9 * MiB)
      await checkTables(v, path.join(v.dir, `${order.join('')}-before.db`))

      await v.stopController()
      await v.startController() // the start-time check accepts the shared table
      for (const n of ['o', 's', 'c']) await readsAsExpected(v, n)

      const left = ['o', 's', 'c']
      for (const name of order) {
        await v.run(['disk', 'delete', name])
        left.splice(left.indexOf(name), 1)
        for (const n of left) await readsAsExpected(v, n)
      }
      await waitFor(
        'the freed space back in the pool',
        async () => {
          const d = await free()
          return d.free === start.free && d.quarantined === 0
        },
        30_000,
      )
      await checkTables(v, path.join(v.dir, `${order.join('')}-after.db`))
    })
  }

  await v.stopController()
  await v.startController()
  const end = await free()
  assert.deepEqual([end.free, end.quarantined], [start.free, 0])
})
