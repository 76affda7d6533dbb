// Two agents on two hosts (namespaces B and C, each with its own certificate and link to the
// controller in A) serve one disk while `vstor disk move` copies it to another device: the move
// fences the range at both agents over TLS, copies, switches, and both go on. Each agent writes
// its own part before (qemu-io patterns) and during the move (fio with verify); afterwards every
// part reads back through each of them (fio --verify_only through the other agent), and the
// whole disk maps to the new device.

import assert from 'node:assert/strict'
import path from 'node:path'
import test from 'node:test'
import { cluster } from '../helpers/cluster'
import { MiB, qemuIoOk, type ShResult } from '../helpers/instance'

/** qemu-io commands writing (or reading with -P) pattern p over [from, to) MiB, one 1M command each. */
const span = (op: 'write' | 'read', p: number, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `${op} -P 0x${p.toString(16)} ${(from + i) * MiB} 1M`)

/** fio randwrite with crc32c verify over [at, at+8) MiB; with --verify_only it re-reads what that job wrote. */
const fioArgs = (file: string, at: number): string[] => [
  `--name=part${at}`,
  `--filename=${file}`,
  `--offset=${at * MiB}`,
  `--size=${8 * MiB}`,
  '--rw=randwrite',
  '--bs=4k',
  '--direct=1',
  '--ioengine=libaio',
  '--iodepth=8',
  '--rate_iops=1000',
  '--verify=crc32c',
  '--verify_fatal=1',
  '--verify_state_save=0',
]

function fioOk(f: ShResult): void {
  assert.equal(f.code, 0, `fio:\n${f.stdout}\n${f.stderr}`)
  assert.doesNotMatch(f.stdout + f.stderr, /verify: bad|crc32c: verify failed|err=\s*[1-9]/)
}

test('two agents in two namespaces share a disk through a disk move and both verify', async (t) => {
  const c = await cluster(t, { agents: 2 })
  if (!c) return
  const { v } = c
  const [b, cc] = c.agents as [(typeof c.agents)[0], (typeof c.agents)[0]]
  await v.addDevice(64 * MiB, 'd0')
  await v.addDevice(64 * MiB, 'd1')
  await v.run(['disk', 'create', 'shared', '--size', '48M', '--device', 'd0'])
  const mntB = v.mnt
  const mntC = path.join(v.dir, 'mnt-c')
  await c.mount(b, mntB)
  await c.mount(cc, mntC)
  const imgB = path.join(mntB, 'shared.img')
  const imgC = path.join(mntC, 'shared.img')
  const agents = (await v.status()).agents
  assert.deepEqual(agents.map((a) => [a.id.split(':')[0], a.connected]).sort(), [
    ['hostb', true],
    ['hostc', true],
  ])

  await qemuIoOk(imgB, span('write', 0xb1, 0, 16))
  await qemuIoOk(imgC, span('write', 0xc1, 16, 32))
  // both keep writing their own 8M (fio, rate-limited to ~2 s) while the move runs
  const fioB = v.background('fio', fioArgs(imgB, 32), { timeoutMs: 300_000 })
  const fioC = v.background('fio', fioArgs(imgC, 40), { timeoutMs: 300_000 })
  await v.run(['disk', 'move', 'shared', '--to', 'd1', '--wait'], { timeoutMs: 180_000 })
  for (const f of [await fioB.done, await fioC.done]) fioOk(f)

  const map = await v.diskMap('shared')
  assert.ok(
    map.extents.every((e) => e.device === 'd1' && !e.noWrite),
    JSON.stringify(map.extents),
  )
  const before = [...span('read', 0xb1, 0, 16), ...span('read', 0xc1, 16, 32)]
  await qemuIoOk(imgB, before)
  await qemuIoOk(imgC, before)
  // what each wrote during the move, read back through the other
  fioOk(await v.sh('fio', [...fioArgs(imgC, 32), '--verify_only'], { timeoutMs: 120_000 }))
  fioOk(await v.sh('fio', [...fioArgs(imgB, 40), '--verify_only'], { timeoutMs: 120_000 }))
  // and both write again after the move, each seeing the other's write
  await qemuIoOk(imgB, ['write -P 0xb3 0 64k'])
  await qemuIoOk(imgC, ['read -P 0xb3 0 64k', 'write -P 0xc3 64k 64k'])
  await qemuIoOk(imgB, ['read -P 0xc3 64k 64k'])
  const st = await v.status()
  for (const a of st.agents) assert.equal(a.generation, st.controller.generation, `${a.id} caught up`)
})
