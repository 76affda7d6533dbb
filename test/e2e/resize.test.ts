// Issue 9 end to end: growing a disk online under a mounted ext4. For a thick
// and a thin disk: mkfs.ext4 on a loop device over the image, mount, write
// files; `vstor disk resize` to a bigger size while mounted; the image shows
// the new size as soon as the command returns (the loop device's fd keeps
// working), `losetup -c` grows the mounted device, `resize2fs` the file system
// (online; unmounted where the host withholds CAP_SYS_RESOURCE), a file larger
// than the old disk fits, every file checksums, and `fsck -f -n` is clean.
// Shrinking needs --shrink and is refused while the disk is open.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { DiskInfo } from '../../src/protocol/messages'
import { MiB, sh, shOk, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { assertSpaceConsistent } from '../helpers/jobs'

const OLD = 48 * MiB
const NEW = 128 * MiB

/** CAP_SYS_RESOURCE (bit 24) in our effective set: the kernel allows an online ext4 resize. */
const ONLINE = (BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0')) >> 24n) & 1n

const sha = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

async function blockSize(dev: string): Promise<number> {
  return Number((await shOk('blockdev', ['--getsize64', dev])).stdout.trim())
}

async function fsBytes(dir: string): Promise<number> {
  const s = await fs.promises.statfs(dir)
  return s.blocks * s.bsize
}

/** mkfs + mount + files, grow online, resize2fs, a file bigger than the old disk, checksums, fsck. Leaves the loop attached. */
async function growUnderExt4(t: { diagnostic(s: string): void }, v: Instance, disk: string): Promise<string> {
  const img = v.image(disk)
  const loop = await v.losetupAttach(img)
  await shOk('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', loop])
  const dir = fs.mkdtempSync(path.join(v.dir, `fs-${disk}-`))
  await shOk('mount', [loop, dir])
  v.trackMount(dir)
  const files: Record<string, string> = {}
  for (const [name, size] of [
    ['a', 5 * MiB + 123],
    ['b', 20 * MiB],
  ] as const) {
    fs.writeFileSync(path.join(dir, name), crypto.randomBytes(size))
    files[name] = sha(path.join(dir, name))
  }
  const before = await fsBytes(dir)

  const r = await v.run<DiskInfo>(['disk', 'resize', disk, '--size', `${NEW / MiB}M`], { json: true })
  assert.equal(r.json.size, NEW)
  assert.equal(fs.statSync(img).size, NEW, 'the image does not show the new size when resize returns')
  assert.equal(await blockSize(loop), OLD, 'the loop device changed size before losetup -c')
  await shOk('losetup', ['-c', loop])
  assert.equal(await blockSize(loop), NEW)
  fs.writeFileSync(path.join(dir, 'd'), crypto.randomBytes(MiB)) // the mounted fs works on over the grown device
  files.d = sha(path.join(dir, 'd'))
  if (ONLINE === 1n) await shOk('resize2fs', [loop])
  else {
    // Online ext4 resize needs CAP_SYS_RESOURCE, which this host withholds: grow it unmounted.
    await shOk('umount', [dir])
    await shOk('e2fsck', ['-f', '-p', loop])
    await shOk('resize2fs', [loop])
    await shOk('mount', [loop, dir])
  }
  const after = await fsBytes(dir)
  t.diagnostic(`${disk}: ext4 ${before} -> ${after} bytes, resize2fs ${ONLINE === 1n ? 'online' : 'offline (no CAP_SYS_RESOURCE)'}`)
  assert.ok(after > OLD && after > before * 2, `ext4 did not grow: ${before} -> ${after}`)

  // More than the old disk held: it must land in the new space.
  fs.writeFileSync(path.join(dir, 'c'), crypto.randomBytes(OLD + 8 * MiB))
  files.c = sha(path.join(dir, 'c'))
  await shOk('sync', [])
  await shOk('umount', [dir])
  await shOk('mount', [loop, dir])
  for (const [name, sum] of Object.entries(files)) assert.equal(sha(path.join(dir, name)), sum, `${disk}: file ${name} changed`)
  await shOk('umount', [dir])
  const fsck = await sh('fsck.ext4', ['-f', '-n', loop])
  assert.equal(fsck.code, 0, `fsck.ext4 -f -n on ${disk}: ${fsck.stdout} ${fsck.stderr}`)
  return loop
}

test('disk resize online under ext4 (thick and thin); shrink needs --shrink and a closed disk', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(320 * MiB, 'd0')
  await v.run(['disk', 'create', 'k', '--size', `${OLD / MiB}M`])
  await v.run(['disk', 'create', 'n', '--size', `${OLD / MiB}M`, '--thin'])
  await v.mount()
  const loops: Record<string, string> = {}

  await t.test('thick: grow, losetup -c, resize2fs, files intact, fsck clean', async () => {
    loops.k = await growUnderExt4(t, v, 'k')
    const map = await v.diskMap('k')
    assert.equal(map.size, NEW)
    assert.ok(
      map.extents.every((e) => e.device === 'd0' && !e.zero && !e.invalid),
      'thick growth left unmapped space',
    )
  })

  await t.test('thin: grow, losetup -c, resize2fs, files intact, fsck clean', async () => {
    loops.n = await growUnderExt4(t, v, 'n')
    const n = (await v.diskList()).find((d) => d.name === 'n')
    assert.equal(n?.size, NEW)
    assert.ok(n.allocated > OLD && n.allocated <= NEW, `thin disk allocated ${n.allocated}`)
    await assertSpaceConsistent(v, ['k', 'n'])
  })

  await t.test('shrink: refused without --shrink, refused while open, done once closed', async () => {
    const no = await v.run(['disk', 'resize', 'k', '--size', '16M'], { expectFail: true })
    assert.equal(no.code, 1)
    assert.match(no.stderr, /--shrink/)
    await waitFor('k open on the agent', async () => ((await v.diskList()).find((d) => d.name === 'k')?.openBy ?? []).length > 0)
    const open = await v.run(['disk', 'resize', 'k', '--size', '16M', '--shrink'], { expectFail: true })
    assert.equal(open.code, 1)
    assert.match(open.stderr, /open on agent/)
    assert.equal(fs.statSync(v.image('k')).size, NEW)
    await v.losetupDetach(loops.k!)
    await waitFor('k closed', async () => ((await v.diskList()).find((d) => d.name === 'k')?.openBy ?? ['?']).length === 0)
    const usedBefore = (await v.deviceList())[0]!.used
    const r = await v.run<DiskInfo>(['disk', 'resize', 'k', '--size', '16M', '--shrink'], { json: true })
    assert.equal(r.json.size, 16 * MiB)
    assert.equal(fs.statSync(v.image('k')).size, 16 * MiB)
    assert.equal((await v.diskMap('k')).size, 16 * MiB)
    await waitFor('the cut space back in the pool', async () => (await v.deviceList())[0]!.used === usedBefore - (NEW - 16 * MiB))
    await assertSpaceConsistent(v, ['k', 'n'])
  })
})
