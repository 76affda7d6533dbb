// Issue 8: the mount enforces permissions (default_permissions). Images are
// root 0600 by default; `vstor mount --gid G --mode 0660` lets members of G
// in, `--mode 0666` everyone; chmod/chown on an image are EPERM.
//
// Invariants checked, as user nobody (uid 65534, through setpriv): refused
// read and write by default; allowed read and write in the group with
// 0660 (and still refused without the group); allowed with 0666; what
// nobody wrote is what root reads back.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import test from 'node:test'
import { MiB, qemuIoOk, sh, vstorInstance, type Instance, type ShResult } from '../helpers/instance'

const NOBODY = 65534
const GROUP = 4242

/** dd as nobody (optionally with an extra group): read the first 4 KiB, or write 4 KiB from a file at offset `seek` blocks. */
function asNobody(args: string[], groups: number[] = []): Promise<ShResult> {
  const who = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, ...(groups.length ? [`--groups=${groups.join(',')}`] : ['--clear-groups'])]
  return sh('setpriv', [...who, 'dd', ...args, 'bs=4k', 'count=1', 'status=none'])
}
const readAs = (img: string, groups?: number[]) => asNobody([`if=${img}`, 'of=/dev/null'], groups)
const writeAs = (v: Instance, img: string, byte: number, seek: number, groups?: number[]) =>
  asNobody([`if=${v.makeFile(4096, `pat-${byte}.bin`, { fill: byte })}`, `of=${img}`, `seek=${seek}`, 'conv=notrunc'], groups)

const denied = (r: ShResult): boolean => r.code !== 0 && /Permission denied/.test(r.stderr)
const allowed = (r: ShResult): boolean => r.code === 0

test('images are root 0600 by default; --gid/--mode open them to a group or everyone; chmod and chown are EPERM', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  fs.chmodSync(v.dir, 0o711) // nobody may walk to the mountpoint (mkdtemp made it 0700)
  await v.startController()
  await v.addDevice(24 * MiB, 'd0')
  await v.run(['disk', 'create', 'p', '--size', '4M'])
  const img = v.image('p')

  await t.test('default: root 0600, nobody can neither read nor write', async () => {
    await v.mount()
    const st = await fs.promises.stat(img)
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o600, 0, 0])
    const r = await readAs(img)
    assert.ok(denied(r), `nobody read a 0600 image: ${r.code} ${r.stderr}`)
    const w = await writeAs(v, img, 0x4e, 0)
    assert.ok(denied(w), `nobody wrote a 0600 image: ${w.code} ${w.stderr}`)
    await qemuIoOk(img, ['read -P 0 0 4k'])
  })

  await t.test('chmod and chown on an image give EPERM and change nothing', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: NodeJS.ErrnoException) => e.code,
      )
    assert.equal(await code(fs.promises.chmod(img, 0o666)), 'EPERM')
    assert.equal(await code(fs.promises.chown(img, NOBODY, NOBODY)), 'EPERM')
    const st = await fs.promises.stat(img)
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o600, 0, 0])
  })

  await t.test(`--gid ${GROUP} --mode 0660: members of the group read and write, others still cannot`, async () => {
    await v.unmount()
    await v.mount(['--gid', String(GROUP), '--mode', '0660'])
    const st = await fs.promises.stat(img)
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o660, 0, GROUP])
    assert.ok(allowed(await writeAs(v, img, 0x47, 1, [GROUP])), 'a group member could not write')
    const r = await readAs(img, [GROUP])
    assert.ok(allowed(r), `a group member could not read: ${r.stderr}`)
    assert.ok(denied(await readAs(img)), 'nobody outside the group read it')
    assert.ok(denied(await writeAs(v, img, 0x4e, 2)), 'nobody outside the group wrote it')
    await qemuIoOk(img, ['read -P 0x47 4k 4k', 'read -P 0 8k 4k'])
  })

  await t.test('--mode 0666: anyone reads and writes', async () => {
    await v.unmount()
    await v.mount(['--mode', '0666'])
    assert.ok(allowed(await writeAs(v, img, 0x4f, 3)), 'nobody could not write a 0666 image')
    assert.ok(allowed(await readAs(img)), 'nobody could not read a 0666 image')
    await qemuIoOk(img, ['read -P 0x4f 12k 4k', 'read -P 0x47 4k 4k'])
  })
})
