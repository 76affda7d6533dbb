// The daemons' scheduling priority (src/priority.ts): a detached controller runs every thread and
// its session's autogroup 10 nice levels up; an agent its main thread only (its FUSE I/O threads
// keep the process's nice). Under load this is what keeps a move's stall short.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import test from 'node:test'
import { BOOST } from '../../src/priority'
import { MiB, vstorInstance } from '../helpers/instance'
import { threads } from '../helpers/sched'

test('a detached controller runs 10 nice levels up, threads and autogroup; an agent its main thread', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(64 * MiB, 'd0')
  await v.run(['disk', 'create', 'p', '--size', '16M', '--device', 'd0'])
  await v.mount()
  const base = os.getPriority() // the daemons were started from this process
  const s = await v.status()
  const ctl = s.controller.pid
  const want = Math.max(-20, base - BOOST)
  for (const [tid, n] of threads(ctl)) assert.equal(n.nice, want, `controller thread ${tid}`)
  if (fs.existsSync(`/proc/${ctl}/autogroup`)) {
    assert.match(fs.readFileSync(`/proc/${ctl}/autogroup`, 'utf8'), new RegExp(`nice ${want}\\b`), 'its own session, raised')
    assert.doesNotMatch(fs.readFileSync('/proc/self/autogroup', 'utf8'), new RegExp(`nice ${want}\\b`), "the test's session untouched")
  }
  const agent = s.agents.find((a) => a.mountpoint === v.mnt)!.pid
  const own = threads(agent)
  assert.equal(own.get(agent)?.nice, want, 'agent main thread')
  for (const [tid, n] of own) if (tid !== agent) assert.equal(n.nice, base, `agent thread ${tid} (I/O) keeps the process's nice`)
})
