// Issue 3 end to end: extent states seen through the image. Zero extents read
// zeros and allocate on first write without stale device bytes showing;
// no-write, invalid and error give EROFS/EIO exactly inside their range and
// clear again with the data intact; setting zero on a mapped range releases
// its units.

import assert from 'node:assert/strict'
import { MiB, ioError, qemuIo, qemuIoOk, type Instance } from '../helpers/instance'
import { testOnFrontends } from './frontends'
import { backingBytes } from '../helpers/map'

const EIO = /Input\/output error/
const EROFS = /Read-only file system/

/** qemu-io commands that must all fail; returns the error text of the first. */
async function ioFails(img: string, cmd: string): Promise<string> {
  const r = await qemuIo(img, [cmd])
  const err = ioError(r)
  assert.notEqual(err, '', `'${cmd}' should fail: ${r.stdout} ${r.stderr}`)
  return err
}

async function flagsAt(v: Instance, disk: string, offset: number): Promise<string> {
  const e = (await v.diskMap(disk)).extents.find((x) => x.offset <= offset && offset < x.offset + x.length)
  assert.ok(e, `no extent at ${offset}`)
  return ['invalid', 'noWrite', 'zero', 'error'].filter((k) => e[k as 'invalid']).join(',')
}

const unitPattern = (i: number): string => `0x${(0x10 + i).toString(16)}`

testOnFrontends('extent states through the image', async (t, instance) => {
  const v = await instance()
  await v.startController()
  await v.addDevice(40 * MiB, 'd0', { fill: 0xaa })
  await v.run(['disk', 'create', 'th', '--size', '16M', '--thin'])
  await v.run(['disk', 'create', 'tk', '--size', '8M'])
  await v.mount()
  const th = v.image('th')
  const tk = v.image('tk')
  const free = async (): Promise<number> => (await v.deviceList()).find((d) => d.name === 'd0')?.free ?? NaN
  const allocated = async (disk: string): Promise<number> => (await v.diskList()).find((d) => d.name === disk)?.allocated ?? NaN

  await t.test('a thin disk on a 0xAA device reads zeros and has nothing allocated', async () => {
    assert.equal(await allocated('th'), 0)
    const map = await v.diskMap('th')
    assert.ok(
      map.extents.every((e) => e.zero && e.device === null),
      JSON.stringify(map.extents),
    )
    await qemuIoOk(th, ['read -P 0 0 16M'])
  })

  await t.test('a 4k write into a zero unit allocates it; the rest of the unit reads zeros, never 0xAA', async () => {
    const freeBefore = await free()
    await qemuIoOk(th, [`write -P 0x42 ${2 * MiB + 8192} 4k`])
    assert.equal(await allocated('th'), MiB)
    assert.equal(await free(), freeBefore - MiB)
    await qemuIoOk(th, [
      `read -P 0 ${2 * MiB} 8k`,
      `read -P 0x42 ${2 * MiB + 8192} 4k`,
      `read -P 0 ${2 * MiB + 12288} ${MiB - 12288}`,
      'read -P 0 0 2M',
      'read -P 0 3M 13M',
    ])
    // On the device too: the unit was zero-filled, not left with the 0xAA fill.
    const map = await v.diskMap('th')
    const unit = backingBytes(map, await v.deviceList(), 2 * MiB, MiB)
    assert.equal(unit.indexOf(0xaa), -1, 'stale 0xAA bytes in the allocated unit on the device')
    assert.ok(unit.subarray(8192, 12288).equals(Buffer.alloc(4096, 0x42)))
  })

  await t.test('no-write from an extent edge across the next one (mapped unit, then zero unit)', async () => {
    // th is now: zero [0,2M) | mapped [2M,3M) | zero [3M,16M); the range starts at the edge 2M and crosses 3M.
    await v.run(['extent', 'set', 'th', '--offset', '2M', '--length', '2M', '--set', 'no-write'])
    assert.equal(await flagsAt(v, 'th', 2 * MiB), 'noWrite')
    assert.match(await flagsAt(v, 'th', 3 * MiB), /noWrite/)
    assert.doesNotMatch(await flagsAt(v, 'th', 4 * MiB), /noWrite/)
    assert.doesNotMatch(await flagsAt(v, 'th', 2 * MiB - 1), /noWrite/)
    await qemuIoOk(th, [`read -P 0x42 ${2 * MiB + 8192} 4k`, `read -P 0 ${3 * MiB} 1M`])
    assert.match(await ioFails(th, `write -P 0x43 ${2 * MiB} 4k`), EROFS)
    assert.match(await ioFails(th, `write -P 0x43 ${3 * MiB + 4096} 4k`), EROFS)
    assert.equal(await allocated('th'), MiB, 'a refused write allocated space')
    await v.run(['extent', 'set', 'th', '--offset', '2M', '--length', '2M', '--clear', 'no-write'])
    await qemuIoOk(th, [`write -P 0x43 ${2 * MiB} 4k`, `read -P 0x43 ${2 * MiB} 4k`, `read -P 0x42 ${2 * MiB + 8192} 4k`])
  })

  // The thick disk gets a distinct pattern per unit, so "data intact" is checkable.
  await t.test('thick disk: fill each unit with its own pattern', async () => {
    await qemuIoOk(
      tk,
      Array.from({ length: 8 }, (_, i) => `write -P ${unitPattern(i)} ${i * MiB} 1M`),
    )
  })
  const intact = (units: number[]): Promise<unknown> =>
    qemuIoOk(
      tk,
      units.map((i) => `read -P ${unitPattern(i)} ${i * MiB} 1M`),
    )

  await t.test('no-write: reads pass, writes inside get EROFS, neighbours stay writable', async () => {
    await v.run(['extent', 'set', 'tk', '--offset', '2M', '--length', '2M', '--set', 'no-write'])
    assert.equal(await flagsAt(v, 'tk', 2 * MiB), 'noWrite')
    assert.equal(await flagsAt(v, 'tk', 4 * MiB), '')
    await intact([2, 3])
    assert.match(await ioFails(tk, `write -P 0x77 ${2 * MiB} 4k`), EROFS)
    assert.match(await ioFails(tk, `write -P 0x77 ${4 * MiB - 4096} 4k`), EROFS)
    await qemuIoOk(tk, [`write -P ${unitPattern(1)} ${2 * MiB - 4096} 4k`, `write -P ${unitPattern(4)} ${4 * MiB} 4k`])
    await intact([1, 2, 3, 4])
  })

  await t.test('--clear no-write restores writes', async () => {
    await v.run(['extent', 'set', 'tk', '--offset', '2M', '--length', '2M', '--clear', 'no-write'])
    assert.equal(await flagsAt(v, 'tk', 2 * MiB), '')
    await qemuIoOk(tk, [`write -P ${unitPattern(2)} ${2 * MiB} 4k`])
    await intact([2, 3])
  })

  await t.test('invalid: EIO for reads and writes exactly inside the range', async () => {
    await v.run(['extent', 'set', 'tk', '--offset', '3M', '--length', '2M', '--set', 'invalid'])
    assert.equal(await flagsAt(v, 'tk', 3 * MiB), 'invalid')
    assert.match(await ioFails(tk, `read ${3 * MiB} 4k`), EIO)
    assert.match(await ioFails(tk, `read ${5 * MiB - 4096} 4k`), EIO)
    assert.match(await ioFails(tk, `write -P 0x77 ${4 * MiB} 4k`), EIO)
    assert.match(await ioFails(tk, `read ${3 * MiB - 4096} 8k`), EIO)
    await qemuIoOk(tk, [`read -P ${unitPattern(2)} ${3 * MiB - 4096} 4k`, `read -P ${unitPattern(5)} ${5 * MiB} 4k`])
    await qemuIoOk(tk, [`write -P ${unitPattern(5)} ${5 * MiB} 4k`])
  })

  await t.test('clearing invalid restores access with the data intact', async () => {
    await v.run(['extent', 'set', 'tk', '--offset', '3M', '--length', '2M', '--clear', 'invalid'])
    assert.equal(await flagsAt(v, 'tk', 3 * MiB), '')
    await intact([2, 3, 4, 5])
  })

  await t.test('error: EIO inside the range; clearing restores the data', async () => {
    await v.run(['extent', 'set', 'tk', '--offset', '6M', '--length', '1M', '--set', 'error'])
    assert.equal(await flagsAt(v, 'tk', 6 * MiB), 'error')
    assert.match(await ioFails(tk, `read ${6 * MiB + 8192} 4k`), EIO)
    assert.match(await ioFails(tk, `write -P 0x77 ${7 * MiB - 4096} 4k`), EIO)
    await intact([5, 7])
    await v.run(['extent', 'set', 'tk', '--offset', '6M', '--length', '1M', '--clear', 'error'])
    await intact([6])
  })

  await t.test('zero on a mapped range releases its units and reads zeros', async () => {
    const freeBefore = await free()
    const allocBefore = await allocated('tk')
    await v.run(['extent', 'set', 'tk', '--offset', '0', '--length', '2M', '--set', 'zero'])
    assert.equal(await free(), freeBefore + 2 * MiB)
    assert.equal(await allocated('tk'), allocBefore - 2 * MiB)
    const e = (await v.diskMap('tk')).extents[0]
    assert.equal(e?.zero, true)
    assert.equal(e?.device, null)
    await qemuIoOk(tk, ['read -P 0 0 2M'])
    await intact([2, 3, 4, 5, 6, 7])
    // A new write there allocates again and the unit reads zeros around it.
    await qemuIoOk(tk, ['write -P 0x99 4k 4k', 'read -P 0 0 4k', 'read -P 0x99 4k 4k', `read -P 0 8k ${2 * MiB - 8192}`])
  })

  await t.test('bad input to extent set: exit 1, clear message, map unchanged', async () => {
    const before = await v.diskMap('tk')
    const cases: [string[], RegExp, number[]][] = [
      [['tk', '--offset', '0', '--length', '1M', '--set', 'bogus'], /bogus/, [1, 2]],
      [['tk', '--offset', '1000', '--length', '1M', '--set', 'zero'], /align|1 ?M/i, [1]],
      [['tk', '--offset', '0', '--length', '1000', '--set', 'zero'], /align|1 ?M/i, [1]],
      [['tk', '--offset', '8M', '--length', '1M', '--set', 'zero'], /range|beyond|past|end|size/i, [1]],
      [['tk', '--offset', '7M', '--length', '2M', '--set', 'zero'], /range|beyond|past|end|size/i, [1]],
      [['tk', '--offset', '0', '--length', '0', '--set', 'zero'], /length/i, [1]],
      [['nosuch', '--offset', '0', '--length', '1M', '--set', 'zero'], /nosuch/, [1]],
    ]
    for (const [args, re, codes] of cases) {
      const r = await v.run(['extent', 'set', ...args], { expectFail: true })
      assert.ok(codes.includes(r.code), `exit ${r.code} for extent set ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^vstor: |Error/)
      assert.match(r.stderr, re, `extent set ${args.join(' ')}`)
      assert.deepEqual(await v.diskMap('tk'), before)
    }
  })
})
