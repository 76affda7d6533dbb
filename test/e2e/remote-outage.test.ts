// The link of an agent's host goes down for 10 s while fio verify runs on a thin disk it serves
// (every other unit written before and fio writing in order, so it makes both mapped writes and
// first writes, and meets first writes during the outage). Mapped I/O
// goes on without the controller; first writes wait for it (the unit stays unallocated at the
// controller for the whole outage) and complete once the link is back; fio verifies with 0
// errors. The 10 s are the scenario's outage, not a wait for a condition.

import assert from 'node:assert/strict'
import test from 'node:test'
import { cluster } from '../helpers/cluster'
import { MiB, qemuIoOk, sleep, waitFor } from '../helpers/instance'
import { qemuIoArgs } from '../helpers/proc'

const OUTAGE_MS = 10_000
const SIZE = 16 * MiB

test('link down for 10 s during fio verify: mapped I/O goes on, first writes wait and complete after, 0 verify errors', async (t) => {
  const c = await cluster(t, { agents: 1 })
  if (!c) return
  const { v, lab } = c
  const b = c.agents[0]!
  await v.addDevice(96 * MiB, 'd0')
  await v.run(['disk', 'create', 'th', '--size', String(SIZE), '--thin'])
  await v.run(['disk', 'create', 'side', '--size', '8M', '--thin'])
  await c.mount(b, v.mnt, ['--fault-timeout', '120s'])
  const th = v.image('th')
  const side = v.image('side')
  // every other unit of th mapped; unit 0 of side mapped
  await qemuIoOk(
    th,
    Array.from({ length: SIZE / MiB / 2 }, (_, i) => `write -P 0x11 ${2 * i * MiB} 1M`),
  )
  await qemuIoOk(side, ['write -P 0x21 0 1M'])
  const allocated = async (name: string): Promise<number> => (await v.diskList()).find((d) => d.name === name)?.allocated ?? -1
  assert.equal(await allocated('th'), SIZE / 2)

  const fio = v.background(
    'fio',
    [
      '--name=outage',
      `--filename=${th}`,
      '--rw=write', // in order: mapped and unallocated units alternate until the end
      '--bs=4k',
      '--direct=1',
      '--ioengine=libaio',
      '--iodepth=16',
      `--size=${SIZE}`,
      '--rate_iops=1000', // a write phase of ~4 s: the outage falls into it
      '--verify=crc32c',
      '--verify_fatal=1',
      '--verify_state_save=0',
    ],
    { timeoutMs: 300_000 },
  )
  await waitFor('fio to make first writes', async () => (await allocated('th')) > SIZE / 2, 60_000, 50)
  await lab.setLink(b.link.b, 'down')
  const downAt = Date.now()

  // mapped reads and writes, with the controller unreachable
  await qemuIoOk(side, ['read -P 0x21 0 1M', 'write -P 0x22 64k 64k', 'read -P 0x22 64k 64k', 'read -P 0x21 0 64k'])
  // a first write into side's unit 4: it needs the controller
  const first = v.background('qemu-io', qemuIoArgs(side, [`write -P 0x23 ${4 * MiB + 4096} 4k`]))
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)))

  assert.equal(first.child.exitCode, null, 'the first write finished while the link was down')
  assert.equal(fio.child.exitCode, null, 'fio finished while the link was down: no first write waited')
  const held = (await v.diskMap('side')).extents.find((e) => e.offset <= 4 * MiB && 4 * MiB < e.offset + e.length)
  assert.equal(held?.zero, true, 'side unit 4 was allocated during the outage')
  assert.ok((await allocated('th')) < SIZE, 'every unit of th was allocated during the outage')
  await lab.setLink(b.link.b, 'up')

  const w = await first.done
  assert.equal(w.code, 0, w.stdout + w.stderr)
  assert.doesNotMatch(w.stdout, /failed/)
  const f = await fio.done
  assert.equal(f.code, 0, `fio:\n${f.stdout}\n${f.stderr}`)
  assert.doesNotMatch(f.stdout + f.stderr, /verify: bad|crc32c: verify failed|err=\s*[1-9]/)
  assert.equal(await allocated('th'), SIZE)
  await qemuIoOk(side, [
    `read -P 0x23 ${4 * MiB + 4096} 4k`,
    `read -P 0 ${4 * MiB} 4k`,
    `read -P 0 ${4 * MiB + 8192} ${MiB - 8192}`,
    'read -P 0x22 64k 64k',
  ])
  const agent = await c.agentAt(v.mnt)
  assert.ok(agent?.connected, JSON.stringify(agent))
})
