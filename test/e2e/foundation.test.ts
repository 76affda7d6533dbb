// Issue 2 end to end: a thick disk spanning two devices, written and read
// through the FUSE image with qemu-io, checked byte for byte against the
// backing files (via `disk map --json`) and against a reference file; an ext4
// file system on the image survives an agent and controller restart; the image
// has its exact size, refuses writes past the end and truncation; disks come
// and go in the mount as they are created and deleted.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { MiB, qemuIoOk, sh, shOk, waitFor, type Instance } from '../helpers/instance'
import { testOnFrontends } from './frontends'
import { backingBytes, edges, mapProblem } from '../helpers/map'

interface W {
  off: number
  len: number
  pat: number
}

const SIZE = 64 * MiB

/** Writes across unit, extent and device edges, at both ends and unaligned. */
function plannedWrites(edgeList: number[]): W[] {
  const ws: W[] = [
    { off: 0, len: 64 * 1024, pat: 0x11 },
    { off: MiB - 4096, len: 8192, pat: 0x22 },
    { off: 5 * MiB + 123, len: 1000, pat: 0x33 },
    { off: 10 * MiB, len: 3 * MiB + 512, pat: 0x44 },
    { off: SIZE - 4096, len: 4096, pat: 0x55 },
  ]
  edgeList.forEach((e, i) => ws.push({ off: e - 6144, len: 12288, pat: 0x60 + i }))
  return ws
}

async function fsChecksums(dir: string, names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const n of names)
    out[n] = crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(dir, n)))
      .digest('hex')
  return out
}

/** losetup the image and mount its ext4 on a fresh dir; returns [loop, dir]. */
async function mountFs(v: Instance, img: string, ro = false): Promise<[string, string]> {
  const loop = await v.losetupAttach(img)
  const dir = fs.mkdtempSync(path.join(v.dir, 'fs-'))
  await shOk('mount', [...(ro ? ['-o', 'ro'] : []), loop, dir])
  v.trackMount(dir)
  return [loop, dir]
}

testOnFrontends('foundation: a thick disk over two devices, end to end', async (t, instance) => {
  const v = await instance()
  await v.startController()
  await v.addDevice(40 * MiB, 'd0')
  await v.addDevice(40 * MiB, 'd1')
  await v.run(['disk', 'create', 'vm1', '--size', '64M'])
  await v.mount()
  const img = v.image('vm1')

  await t.test('the map tiles the disk and uses both devices', async () => {
    const map = await v.diskMap('vm1')
    assert.equal(map.size, SIZE)
    assert.equal(mapProblem(map), '')
    const used = new Set(map.extents.map((e) => e.device))
    assert.deepEqual([...used].sort(), ['d0', 'd1'])
    for (const e of map.extents) {
      assert.ok(e.deviceOffset !== null && e.deviceOffset >= MiB, `extent ${e.offset} lies in the label area: ${e.deviceOffset}`)
      assert.equal(e.invalid || e.zero || e.error || e.noWrite, false)
    }
  })

  await t.test('the image has the exact size', () => {
    assert.equal(fs.statSync(img).size, SIZE)
  })

  await t.test('patterns written with qemu-io read back and sit at the mapped device offsets', async () => {
    const map = await v.diskMap('vm1')
    const ws = plannedWrites(edges(map))
    assert.ok(
      ws.some((w) => edges(map).some((e) => w.off < e && e < w.off + w.len)),
      'a write crosses an extent edge',
    )
    await qemuIoOk(
      img,
      ws.map((w) => `write -P 0x${w.pat.toString(16)} ${w.off} ${w.len}`),
    )
    await qemuIoOk(
      img,
      ws.map((w) => `read -P 0x${w.pat.toString(16)} ${w.off} ${w.len}`),
    )
    const devices = await v.deviceList()
    for (const w of ws) {
      const got = backingBytes(map, devices, w.off, w.len)
      assert.ok(got.equals(Buffer.alloc(w.len, w.pat)), `backing bytes of [${w.off}, +${w.len}) are not 0x${w.pat.toString(16)}`)
    }
    // The bytes just outside a write are untouched on the device (still zero).
    const after = backingBytes(map, devices, 5 * MiB + 123 + 1000, 100)
    assert.ok(after.equals(Buffer.alloc(100)), 'bytes after the unaligned write were changed')
  })

  await t.test('qemu-img compare finds the image identical to a reference file', async () => {
    const map = await v.diskMap('vm1')
    const ref = v.makeFile(SIZE, 'reference.raw')
    const fd = fs.openSync(ref, 'r+')
    for (const w of plannedWrites(edges(map))) fs.writeSync(fd, Buffer.alloc(w.len, w.pat), 0, w.len, w.off)
    fs.closeSync(fd)
    const r = await sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, ref])
    assert.equal(r.code, 0, `qemu-img compare: ${r.stdout} ${r.stderr}`)
    // And it notices a difference: the compare is not vacuous.
    const fd2 = fs.openSync(ref, 'r+')
    fs.writeSync(fd2, Buffer.from([0x99]), 0, 1, 40 * MiB)
    fs.closeSync(fd2)
    const r2 = await sh('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, ref])
    assert.equal(r2.code, 1, `qemu-img compare should see the changed byte: ${r2.stdout}`)
  })

  await t.test('writing at or past the end fails with ENOSPC', async () => {
    const r = await sh('dd', ['if=/dev/zero', `of=${img}`, 'bs=4096', `seek=${SIZE / 4096}`, 'count=1', 'conv=notrunc'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /No space left on device/)
    assert.equal(fs.statSync(img).size, SIZE)
  })

  await t.test('truncate is refused with EPERM', async () => {
    for (const size of ['32M', '128M']) {
      const r = await sh('truncate', ['-s', size, img])
      assert.notEqual(r.code, 0, `truncate -s ${size} succeeded`)
      assert.match(r.stderr, /Operation not permitted/)
      assert.equal(fs.statSync(img).size, SIZE)
    }
  })

  const files = ['a.bin', 'b.bin', 'c.bin']
  let sums: Record<string, string> = {}
  await t.test('ext4 on the image: mkfs, files, clean fsck', async () => {
    const loop = await v.losetupAttach(img)
    await shOk('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', loop])
    const dir = fs.mkdtempSync(path.join(v.dir, 'fs-'))
    await shOk('mount', [loop, dir])
    v.trackMount(dir)
    const sizes = [3 * MiB + 17, 200 * 1024, 9 * MiB]
    files.forEach((f, i) => fs.writeFileSync(path.join(dir, f), crypto.randomBytes(sizes[i] ?? 4096)))
    sums = await fsChecksums(dir, files)
    await shOk('umount', [dir])
    const fsck = await sh('fsck.ext4', ['-fn', loop])
    assert.equal(fsck.code, 0, `fsck.ext4 -fn: ${fsck.stdout} ${fsck.stderr}`)
    await v.losetupDetach(loop)
  })

  await t.test('after unmount and a controller restart the files are intact', async () => {
    await v.unmount()
    assert.equal(fs.existsSync(img), false, 'the image is still visible after vstor unmount')
    await v.stopController()
    await v.startController()
    await v.mount()
    assert.equal(fs.statSync(img).size, SIZE)
    const [loop, dir] = await mountFs(v, img, true)
    assert.deepEqual(await fsChecksums(dir, files), sums)
    await shOk('umount', [dir])
    const fsck = await sh('fsck.ext4', ['-fn', loop])
    assert.equal(fsck.code, 0, `fsck.ext4 -fn after restart: ${fsck.stdout}`)
    await v.losetupDetach(loop)
  })

  await t.test('disk create pushes a new image into the mount, rounded up to 1 MiB', async () => {
    await v.run(['disk', 'create', 'small', '--size', '3000000'])
    const disk = (await v.diskList()).find((d) => d.name === 'small')
    assert.equal(disk?.size, 3 * MiB)
    await waitFor('small.img in the mount', () => fs.existsSync(v.image('small')), 15_000)
    assert.equal(fs.statSync(v.image('small')).size, 3 * MiB)
    assert.ok(fs.readdirSync(v.mnt).includes('small.img'))
    await qemuIoOk(v.image('small'), ['write -P 0x5a 0 4k', 'read -P 0x5a 0 4k'])
  })

  await t.test('disk delete of a closed disk removes its image', async () => {
    await v.run(['disk', 'delete', 'small'])
    assert.equal(
      (await v.diskList()).some((d) => d.name === 'small'),
      false,
    )
    await waitFor('small.img gone from the mount', () => !fs.readdirSync(v.mnt).includes('small.img'), 15_000)
  })

  await t.test('disk delete of an open disk is refused without --force', async () => {
    const holder = v.background(process.execPath, [
      '-e',
      `require('fs').openSync(${JSON.stringify(img)}, 'r'); setInterval(() => {}, 1000)`,
    ])
    try {
      // The agent tells the controller which disks are open; wait for it to know.
      await waitFor('vm1 open', async () => ((await v.diskList()).find((d) => d.name === 'vm1')?.openBy ?? []).length > 0, 15_000).catch(
        () => {},
      )
      const r = await v.run(['disk', 'delete', 'vm1'], { expectFail: true })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /^vstor: /)
      assert.ok(
        (await v.diskList()).some((d) => d.name === 'vm1'),
        'vm1 was deleted although open',
      )
      assert.ok(fs.existsSync(img))
      await qemuIoOk(img, ['read 0 4k'])
      await v.run(['disk', 'delete', 'vm1', '--force'])
      assert.equal(
        (await v.diskList()).some((d) => d.name === 'vm1'),
        false,
      )
      await waitFor('vm1.img gone from the mount', () => !fs.readdirSync(v.mnt).includes('vm1.img'), 15_000)
    } finally {
      holder.child.kill('SIGKILL')
      await holder.done
    }
  })
})
