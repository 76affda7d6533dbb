// Issue 3 end to end: a controller outage. With the controller SIGKILLed the
// agent keeps serving mapped I/O from its own table; a first write into a zero
// unit waits for the controller (up to --fault-timeout) and completes once it
// is started again; the agent then has the controller's generation.

import assert from 'node:assert/strict'
import { ioFailed, pidDead, qemuIoArgs } from '../helpers/proc'
import { MiB, qemuIoOk, waitFor } from '../helpers/instance'
import { testOnFrontends } from './frontends'

testOnFrontends('mapped I/O goes on during a controller outage; allocation waits for it', async (t, instance) => {
  const v = await instance()
  await v.startController()
  await v.addDevice(40 * MiB, 'd0')
  await v.run(['disk', 'create', 'o', '--size', '16M', '--thin'])
  await v.mount(['--fault-timeout', '30s'])
  const img = v.image('o')
  await qemuIoOk(img, ['write -P 0x21 0 1M'])
  const agentPid = (await v.status()).agents[0]?.pid ?? 0

  const oldPid = await v.killController()
  assert.equal(pidDead(oldPid), true, 'the controller survived SIGKILL')

  await t.test('mapped reads and writes go on without the controller', async () => {
    await qemuIoOk(img, ['read -P 0x21 0 1M', 'write -P 0x22 4k 4k', 'read -P 0x22 4k 4k', 'read -P 0x21 0 4k', 'read -P 0x21 8k 1016k'])
    const r = await v.run(['status'], { expectFail: true })
    assert.equal(r.code, 3, `status without a controller: ${r.stderr}`)
  })

  await t.test('a first write into a zero unit waits and completes after controller start', async () => {
    const bg = v.background('qemu-io', qemuIoArgs(img, [`write -P 0x23 ${5 * MiB} 4k`]))
    // Not done while the controller is down (it cannot be: the unit has no device yet).
    const early = await Promise.race([bg.done, new Promise<null>((r) => setTimeout(() => r(null), 1500))])
    assert.equal(early, null, `the write finished without a controller: ${early?.stdout} ${early?.stderr}`)
    await v.startController()
    const res = await bg.done
    assert.equal(res.code, 0, res.stdout + res.stderr)
    assert.equal(ioFailed(res), false, res.stdout)
    await qemuIoOk(img, [
      `read -P 0x23 ${5 * MiB} 4k`,
      `read -P 0 ${5 * MiB + 4096} ${MiB - 4096}`,
      `read -P 0 ${4 * MiB} 1M`,
      'read -P 0x22 4k 4k',
    ])
    const map = await v.diskMap('o')
    const e = map.extents.find((x) => x.offset <= 5 * MiB && 5 * MiB < x.offset + x.length)
    assert.equal(e?.device, 'd0')
    assert.equal(e?.zero, false)
  })

  await t.test('the same agent is back with the controller generation', async () => {
    const st = await waitFor(
      'agent caught up',
      async () => {
        const s = await v.status()
        const a = s.agents.find((x) => x.pid === agentPid)
        return a?.connected && a.generation === s.controller.generation ? s : null
      },
      30_000,
    ).catch(async () => v.status())
    assert.notEqual(st.controller.pid, oldPid)
    const a = st.agents.find((x) => x.pid === agentPid)
    assert.ok(a, `agent ${agentPid} not in status: ${JSON.stringify(st.agents)}`)
    assert.equal(a.connected, true)
    assert.equal(a.generation, st.controller.generation)
    assert.equal(a.mountpoint, v.mnt)
  })
})
