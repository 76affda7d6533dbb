// A network LUN across three hosts: namespace C serves a sparse file with nbdkit; the controller's
// host A (its own mount namespace) sees the export through nbdfuse at one path, the agent's host B
// through its own nbdfuse at another path. The controller labels and zeroes the LUN through its
// path; the agent finds it by its label (`--scan`), never at A's path (which on B holds an
// unlabelled file); a disk there verifies through B's mount and its bytes are in C's file.
// A device only A can see is listed as missing for B, and I/O mapped there fails with EIO on B.
// The last subtest: B's page cache over its own path to the LUN never shows a deleted disk's bytes
// in a unit the controller scrubbed through A's path (a remote agent drops cached pages of units a
// table change maps or unmaps, src/agent/coherence.ts).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { cluster } from '../helpers/cluster'
import { MiB, ioError, qemuIo, qemuIoOk, readAt, sh, waitFor } from '../helpers/instance'
import { attachLun, serveLun } from '../helpers/nbd'

const LUN_SIZE = 64 * MiB

/** Paths the process has open (readlink of /proc/PID/fd/*). */
function openPaths(pid: number): string[] {
  const dir = `/proc/${pid}/fd`
  return fs.readdirSync(dir).flatMap((fd) => {
    try {
      return [fs.readlinkSync(path.join(dir, fd))]
    } catch {
      return []
    }
  })
}

test('an nbdkit LUN in namespace C: added through nbdfuse on host A, found by label through nbdfuse on host B', async (t) => {
  const c = await cluster(t, { agents: 1, privateController: true })
  if (!c) return
  const { v, lab, ctl } = c
  const b = c.agents[0]!
  // C serves the LUN on its address toward A; B reaches that address through its own link to C.
  const nsC = await lab.ns()
  const toA = await lab.veth(ctl.ns, nsC)
  const toB = await lab.veth(b.ns, nsC)
  await lab.runOk(b.ns, 'ip', ['route', 'add', `${toA.b.ip}/32`, 'via', toB.b.ip])
  // Old contents everywhere: what reads zeros later was zeroed through the LUN.
  const backing = v.makeFile(LUN_SIZE, 'lun.raw', { fill: 0xee })
  const uri = await serveLun(lab, nsC, backing, toA.b.ip)

  const dirA = path.join(v.dir, 'host-a')
  const dirB = path.join(v.dir, 'host-b')
  fs.mkdirSync(dirA)
  fs.mkdirSync(dirB)
  const lunA = path.join(dirA, 'lun')
  const lunB = path.join(dirB, 'lun')
  // Outside A's mount namespace, A's path holds a file of the same size without a label.
  fs.closeSync(fs.openSync(lunA, 'w'))
  fs.truncateSync(lunA, LUN_SIZE)
  await attachLun(lab, ctl, uri, lunA)
  await attachLun(lab, b, uri, lunB)

  await c.vstorIn(ctl, ['device', 'add', lunA, '--name', 'lun'])
  const lun = (await v.deviceList()).find((d) => d.name === 'lun')
  assert.equal(lun?.path, lunA)
  const label = readAt(backing, 0, 4096).toString('latin1')
  assert.ok(label.startsWith('VSTORLBL\n'), 'the label reached the file nbdkit serves')
  assert.ok(label.includes(lun.uuid), `label ${label.slice(0, 200)} carries ${lun.uuid}`)

  // A device only A can see: a file on a tmpfs mounted in A's mount namespace.
  const priv = path.join(dirA, 'private')
  fs.mkdirSync(priv)
  await ctl.runOk('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'vstor-test', priv])
  await ctl.runOk('truncate', ['-s', '8M', path.join(priv, 'only.img')])
  await c.vstorIn(ctl, ['device', 'add', path.join(priv, 'only.img'), '--name', 'only-a'])
  assert.equal(fs.readdirSync(priv).length, 0, 'the tmpfs is not visible outside A')

  await v.run(['disk', 'create', 'vm', '--size', '16M', '--thin', '--device', 'lun'])
  // 'local' takes all of only-a: the controller places a first write on any device with space,
  // even one the faulting agent reported missing (a known gap), and vm's must land on the LUN
  const onlyA = (await v.deviceList()).find((d) => d.name === 'only-a')
  await v.run(['disk', 'create', 'local', '--size', String(onlyA?.capacity), '--device', 'only-a'])
  await c.mount(b, v.mnt, ['--scan', `${dirB}/*`])
  const agent = await c.agentAt(v.mnt)
  assert.ok(agent?.connected, JSON.stringify(agent))

  await t.test('the agent opened the LUN at its own path, found by label; the stale hint was never written', () => {
    const open = openPaths(agent.pid)
    assert.ok(open.includes(lunB), `agent fds: ${open.join(' ')}`)
    assert.ok(!open.includes(lunA), `agent fds: ${open.join(' ')}`)
    assert.equal(fs.statSync(lunA).blocks, 0, "A's path as B sees it was written")
    assert.match(c.agentLog(v.mnt), /serving 2 disk\(s\)/)
  })

  await t.test('a thin disk on the LUN: first writes, zeroed units and fio verify through the mount of B', async () => {
    const img = v.image('vm')
    await qemuIoOk(img, ['write -P 0x5a 4k 4k', 'flush', 'read -P 0 0 4k', 'read -P 0x5a 4k 4k', `read -P 0 8k ${MiB - 8192}`])
    const first = (await v.diskMap('vm')).extents.find((e) => e.offset === 0)
    assert.equal(first?.device, 'lun')
    const at = first?.deviceOffset ?? 0
    assert.ok(readAt(backing, at + 4096, 4096).equals(Buffer.alloc(4096, 0x5a)), "the bytes are in C's file")
    // C's file held 0xee there: the controller zeroed the unit through its own path before mapping it
    assert.ok(readAt(backing, at + 8192, MiB - 8192).equals(Buffer.alloc(MiB - 8192)), "C's file is zero around them")

    const loop = await v.losetupAttach(img)
    const fio = await sh(
      'fio',
      [
        '--name=lun',
        `--filename=${loop}`,
        '--rw=randwrite',
        '--bs=4k',
        '--direct=1',
        '--ioengine=libaio',
        '--iodepth=16',
        '--size=16M',
        '--verify=crc32c',
        '--verify_fatal=1',
        '--verify_state_save=0',
      ],
      { timeoutMs: 300_000 },
    )
    await v.losetupDetach(loop)
    assert.equal(fio.code, 0, `fio:\n${fio.stdout}\n${fio.stderr}`)
    assert.doesNotMatch(fio.stdout + fio.stderr, /verify: bad|crc32c: verify failed|err=\s*[1-9]/)
    const map = await v.diskMap('vm')
    assert.ok(
      map.extents.every((e) => e.device === 'lun' && !e.zero),
      JSON.stringify(map.extents),
    )
  })

  await t.test('status and agent list show the device B lacks; I/O mapped there fails with EIO on B', async () => {
    const a = await waitFor('the agent to report a missing device', async () => {
      const x = await c.agentAt(v.mnt)
      return x?.missingDevices.length ? x : null
    })
    assert.deepEqual(a.missingDevices, ['only-a'])
    const list = await v.run(['agent', 'list'])
    assert.match(list.stdout, /MISSING DEVICES/)
    assert.match(list.stdout, new RegExp(`hostb:${v.mnt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*only-a`))
    const r = await qemuIo(v.image('local'), ['read 0 4k'])
    assert.equal(ioError(r), 'Input/output error', r.stdout + r.stderr)
    await qemuIoOk(v.image('vm'), ['read 0 1M']) // the LUN's disk still serves
  })

  await t.test("a unit another disk used reads zeros on B once the controller scrubbed it through A's path", async () => {
    await v.run(['disk', 'delete', 'local', '--force'])
    const settled = (name: string) => async () =>
      (await v.deviceList()).every((d) => d.scrubbing === 0 && (d.name !== name || d.used === 0))
    await waitFor('only-a to be empty', settled('only-a'))
    // no device missing on B any more: B stops rescanning (a rescan opens the LUN again, which drops the cache)
    await v.run(['device', 'remove', 'only-a'])
    const img = v.image('vm')
    await qemuIoOk(img, ['write -P 0x77 0 1M', 'read -P 0x77 0 1M'])
    const old = (await v.diskMap('vm')).extents.find((e) => e.offset === 0)
    await v.run(['disk', 'delete', 'vm'])
    await waitFor('the LUN to be scrubbed', settled('lun'))
    await v.run(['disk', 'create', 'vm2', '--size', '16M', '--thin', '--device', 'lun'])
    await waitFor('vm2 on B', () => fs.existsSync(v.image('vm2')))
    await qemuIoOk(v.image('vm2'), ['write -P 0x12 0 4k'])
    const unit = (await v.diskMap('vm2')).extents.find((e) => e.offset === 0)
    assert.equal(unit?.deviceOffset, old?.deviceOffset, 'vm2 got the unit vm had')
    assert.ok(readAt(backing, (unit?.deviceOffset ?? 0) + 4096, MiB - 4096).equals(Buffer.alloc(MiB - 4096)), 'the LUN holds zeros')
    await qemuIoOk(v.image('vm2'), ['read -P 0x12 0 4k', `read -P 0 4k ${MiB - 4096}`])
  })
})
