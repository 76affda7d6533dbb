// A real Linux guest (qemu TCG, virtio-blk, cache=none) on a vstor image: it
// writes patterns through /dev/vda and reads them back, makes an ext2 and
// writes files; the host then checks the patterns with qemu-io, the text with a
// plain read and the file system with fsck; a second boot reads it all back.
// Layout of the disk: test/guest/init.sh. Also: a guest that does not boot or
// does not power off fails with its console instead of hanging the suite.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test, { type TestContext } from 'node:test'
import {
  bootGuest,
  buildGuest,
  GUEST_DISK_SIZE,
  GUEST_FS_SIZE,
  GUEST_HELLO,
  GUEST_REGIONS,
  guestMissingTools,
  guestNumbersMd5,
  guestText,
  type GuestImage,
} from '../helpers/guest'
import type { DiskMap } from '../../src/protocol/messages'
import { MiB, qemuIoOk, readAt, sh, vstorInstance } from '../helpers/instance'

/** TCG on two shared cores, every guest I/O through FUSE: a boot takes 10-30 s. */
const BOOT_TIMEOUT_MS = 180_000

/** The guest kernel and initramfs, or a skip outside CI when qemu & co. are missing. */
async function guestOrSkip(t: TestContext): Promise<GuestImage | undefined> {
  const missing = await guestMissingTools()
  if (missing.length) {
    if (process.env.CI) throw new Error(`guest test needs ${missing.join(', ')}; under CI this is a failure`)
    t.skip(`needs ${missing.join(', ')}`)
    return undefined
  }
  return buildGuest()
}

/** [offset, length] pieces of [from, to) that no pattern region covers. */
function gaps(from: number, to: number): [number, number][] {
  const out: [number, number][] = []
  let at = from
  for (const r of [...GUEST_REGIONS].sort((a, b) => a.offset - b.offset)) {
    if (r.offset > at) out.push([at, r.offset - at])
    at = Math.max(at, r.offset + r.length)
  }
  if (at < to) out.push([at, to - at])
  return out
}

function assertPatternsOk(markers: string[]): void {
  for (const r of GUEST_REGIONS)
    assert.ok(markers.includes(`OK pattern ${r.name}`), `guest did not read back region ${r.name}: ${markers.join(' | ')}`)
}

/** Check a thin disk's map: units the guest wrote in [32M, 64M) are mapped, the others still zero. */
function assertThinMap(map: DiskMap): void {
  for (let unit = GUEST_FS_SIZE; unit < GUEST_DISK_SIZE; unit += MiB) {
    const e = map.extents.find((x) => x.offset <= unit && unit < x.offset + x.length)
    assert.ok(e, `no extent at ${unit}`)
    const written = GUEST_REGIONS.some((r) => r.offset < unit + MiB && unit < r.offset + r.length)
    if (written)
      assert.ok(e.device !== null && !e.zero, `unit at ${unit / MiB} MiB was written by the guest but is not mapped: ${JSON.stringify(e)}`)
    else assert.ok(e.zero && e.device === null, `unit at ${unit / MiB} MiB was never written but got space: ${JSON.stringify(e)}`)
  }
}

for (const thin of [false, true]) {
  test(`guest: a qemu guest writes, formats and reads back a ${thin ? 'thin' : 'thick'} vstor disk`, (t) => guestScenario(t, thin))
}

async function guestScenario(t: TestContext, thin: boolean): Promise<void> {
  const guest = await guestOrSkip(t)
  if (!guest) return
  const v = await vstorInstance(t)
  await v.startController()
  await v.addDevice(96 * MiB, 'd0')
  await v.run(['disk', 'create', 'g', '--size', '64M', ...(thin ? ['--thin'] : [])])
  await v.mount()
  const img = v.image('g')
  assert.equal(fs.statSync(img).size, GUEST_DISK_SIZE)

  // Boot 1: patterns at 40M+ (outside the 32M file system), then ext2 with two files.
  const w = await bootGuest(t, guest, { drive: img, task: 'write', timeoutMs: BOOT_TIMEOUT_MS })
  t.diagnostic(`boot 1 (write): ${w.seconds} s`)
  assert.ok(w.markers.includes('OK mke2fs'), w.console)
  assertPatternsOk(w.markers)
  assert.ok(w.markers.includes('OK fs written'), w.console)
  assert.ok(w.markers.includes(`MD5 ${guestNumbersMd5()}`), `guest wrote numbers.txt with another md5: ${w.markers.join(' | ')}`)

  // Host: every byte pattern where the guest put it, zeros around them.
  const cmds = GUEST_REGIONS.filter((r) => r.byte !== undefined).map((r) => `read -P 0x${r.byte!.toString(16)} ${r.offset} ${r.length}`)
  for (const [off, len] of gaps(GUEST_FS_SIZE, GUEST_DISK_SIZE)) cmds.push(`read -P 0 ${off} ${len}`)
  await qemuIoOk(img, cmds)
  const text = GUEST_REGIONS.find((r) => r.name === 'text')!
  assert.ok(readAt(img, text.offset, text.length).equals(guestText()), 'text region read on the host differs from what the guest wrote')
  // A thin disk got space exactly where the guest wrote (first writes into Zero extents went through faults).
  if (thin) assertThinMap(await v.diskMap('g'))

  // Host: the guest's ext2 is clean.
  const loop = await v.losetupAttach(img)
  const fsck = await sh('fsck.ext2', ['-fn', loop], { timeoutMs: 60_000 })
  assert.equal(fsck.code, 0, `fsck.ext2 -fn found problems:\n${fsck.stdout}\n${fsck.stderr}`)
  await v.losetupDetach(loop)

  // Boot 2, on a fresh agent (its table loaded from the controller): the guest finds its patterns and files again.
  await v.unmount()
  await v.mount()
  const c = await bootGuest(t, guest, { drive: img, task: 'check', timeoutMs: BOOT_TIMEOUT_MS })
  t.diagnostic(`boot 2 (check): ${c.seconds} s`)
  assertPatternsOk(c.markers)
  assert.ok(c.markers.includes(`FILE ${GUEST_HELLO}`), `hello.txt not read back: ${c.markers.join(' | ')}`)
  assert.ok(c.markers.includes(`MD5 ${guestNumbersMd5()}`), `numbers.txt read back with another md5: ${c.markers.join(' | ')}`)
}

test('guest: a guest that cannot boot or never powers off fails with its console', async (t) => {
  const guest = await guestOrSkip(t)
  if (!guest) return
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-guest-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const drive = path.join(dir, 'disk.img')
  fs.writeFileSync(drive, Buffer.alloc(MiB))

  // No usable initramfs: the kernel panics (panic=-1, -no-reboot), qemu exits, no DONE.
  const junk = path.join(dir, 'junk.initrd')
  fs.writeFileSync(junk, Buffer.alloc(4096, 0x5a))
  await assert.rejects(bootGuest(t, { kernel: guest.kernel, initrd: junk }, { drive, task: 'write', timeoutMs: 120_000 }), (e: Error) => {
    assert.match(e.message, /ended without DONE/)
    assert.match(e.message, /Kernel panic/)
    return true
  })

  // A guest that hangs is killed after the timeout.
  await assert.rejects(bootGuest(t, guest, { drive, task: 'hang', timeoutMs: 3000 }), /did not power off within 3 s/)
})
