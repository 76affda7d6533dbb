// Fencing across hosts: while host B's link is down an admin runs `vstor agent forget` for its
// agent. Until B hears of it, it serves mapped I/O (the reason README warns to make sure a host
// is gone first, as with STONITH); once the link is back its reconnect is refused (FENCED) and
// every request fails with EIO. `vstor unmount` + `vstor mount` on B makes a new process with a
// new epoch that serves the disk again, data intact.

import assert from 'node:assert/strict'
import test from 'node:test'
import { cluster } from '../helpers/cluster'
import { MiB, ioError, qemuIo, qemuIoOk, waitFor } from '../helpers/instance'

test('agent forget while the host is cut off: the reconnect is refused, I/O fails with EIO; a new mount serves again', async (t) => {
  const c = await cluster(t, { agents: 1 })
  if (!c) return
  const { v, lab } = c
  const b = c.agents[0]!
  await v.addDevice(32 * MiB, 'd0')
  await v.run(['disk', 'create', 'f', '--size', '8M', '--thin'])
  await c.mount(b, v.mnt)
  const img = v.image('f')
  await qemuIoOk(img, ['write -P 0x61 0 1M'])
  const before = await c.agentAt(v.mnt)
  assert.ok(before?.connected, JSON.stringify(before))

  await lab.setLink(b.link.b, 'down')
  const forgot = await v.run<{ forgotten: boolean; epoch: number }>(['agent', 'forget', before.id], { json: true })
  assert.equal(forgot.json.forgotten, true)
  assert.equal(forgot.json.epoch, before.epoch + 1)
  const gone = await waitFor('the controller to drop the connection', async () => {
    const a = await c.agentAt(v.mnt)
    return a && !a.connected ? a : null
  })
  assert.equal(gone.forgotten, true)
  // B has not heard: it still serves its old table (mapped I/O only)
  await qemuIoOk(img, ['read -P 0x61 0 1M', 'write -P 0x62 4k 4k'])

  await lab.setLink(b.link.b, 'up')
  await waitFor('B to be refused', () => /was forgotten .*its epoch \d+ is older than \d+.*EIO/.test(c.agentLog(v.mnt)), 60_000)
  const r = await qemuIo(img, ['read 0 4k'])
  assert.equal(ioError(r), 'Input/output error', r.stdout + r.stderr)
  const w = await qemuIo(img, [`write -P 0x63 ${2 * MiB} 4k`])
  assert.equal(ioError(w), 'Input/output error', w.stdout + w.stderr)
  const still = await c.agentAt(v.mnt)
  assert.deepEqual([still?.connected, still?.forgotten, still?.epoch], [false, true, before.epoch + 1])

  await c.vstorIn(b, ['unmount', v.mnt])
  await c.mount(b, v.mnt)
  const after = await c.agentAt(v.mnt)
  assert.deepEqual([after?.id, after?.connected, after?.forgotten], [before.id, true, false])
  assert.ok((after?.epoch ?? 0) > before.epoch + 1, `epoch ${after?.epoch} after forget at ${before.epoch + 1}`)
  assert.notEqual(after?.pid, before.pid)
  await qemuIoOk(img, ['read -P 0x61 0 4k', 'read -P 0x62 4k 4k', `read -P 0x61 8k ${MiB - 8192}`, `write -P 0x64 ${2 * MiB} 4k`])
  await qemuIoOk(img, [`read -P 0x64 ${2 * MiB} 4k`])
})
