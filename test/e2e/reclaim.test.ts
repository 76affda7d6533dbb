// Issue 11 end to end: zero reclaim. A whole, aligned 1 MiB unit written
// with zeros (a real zero write, `write -P 0` with O_DIRECT, not qemu-io's
// `write -z`) into a thin disk goes back to the zero state: `disk list`
// allocated drops by the unit, the map shows it zero, it reads zeros, and
// the space returns to the pool once the quarantine settled. A misaligned
// 1 MiB of zeros changes nothing (only whole aligned units are checked).
//
// The agent sees a unit only when the front end delivers it in one request.
// fuse-native (libfuse 2) negotiates no max_pages, so the kernel splits every
// write into 128 KiB requests (measured: one 1 MiB O_DIRECT write arrives as
// 8 x 131072 bytes): there this test is a TODO. The libfuse 3 front end
// (`vstor mount --fuse libfuse3`, native/fuse3) delivers 1 MiB; it runs
// there whenever that addon is built.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { ioFailed, MiB, repoRoot, sh, vstorInstance, waitFor } from '../helpers/instance'

const FUSE3 = fs.existsSync(path.join(repoRoot(), 'native', 'fuse3', 'build', 'Release', 'fuse3.node'))
const TODO = FUSE3 ? false : 'fuse-native delivers at most 128 KiB per write request; zero reclaim needs a whole 1 MiB unit in one'

test('a whole aligned unit of zeros returns to the zero state and its space to the pool', { todo: TODO }, async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(64 * MiB, 'd0')
  await v.run(['disk', 'create', 'th', '--size', '16M', '--thin'])
  await v.mount(FUSE3 ? ['--fuse', 'libfuse3'] : [])
  const img = v.image('th')
  /** qemu-io with O_DIRECT (-t none): each write reaches the front end as one request of its size. */
  const direct = async (cmds: string[]) => {
    const r = await sh('qemu-io', ['-t', 'none', '-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), img])
    assert.ok(r.code === 0 && !ioFailed(r), `qemu-io ${cmds.join('; ')}: ${r.stdout}${r.stderr}`)
  }
  const th = async () => (await v.diskList()).find((d) => d.name === 'th')!
  const pool = async () => (await v.deviceList())[0]!

  await direct(['write -P 0x11 0 4M'])
  assert.equal((await th()).allocated, 4 * MiB)
  const free = (await pool()).free

  // misaligned: half of two units each, nothing to reclaim
  await direct([`write -P 0 ${MiB / 2} 1M`])
  assert.equal((await th()).allocated, 4 * MiB)

  await direct([`write -P 0 ${2 * MiB} 1M`])
  assert.equal((await th()).allocated, 3 * MiB, 'the zeroed unit is still allocated')
  const m = await v.diskMap('th')
  assert.ok(m.extents.some((e) => e.offset === 2 * MiB && e.length === MiB && e.zero && e.device === null))
  await direct([`read -P 0 ${2 * MiB} 1M`, `read -P 0x11 ${3 * MiB} 1M`, `read -P 0x11 0 ${MiB / 2}`, `read -P 0 ${MiB / 2} 1M`])
  await waitFor('the unit back in the pool', async () => {
    const d = await pool()
    return d.free === free + MiB && d.quarantined === 0
  })
})
