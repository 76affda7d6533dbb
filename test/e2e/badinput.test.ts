// Issue 2 end to end: bad input from the CLI and garbage on the socket. Each
// bad command exits 1 with a `vstor: ` message naming the problem, and the
// disks, devices and map are exactly as before; the controller keeps
// answering whatever a peer writes to its socket.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { PROTOCOL_VERSION } from '../../src/config'
import { MiB, vstorInstance, type Instance } from '../helpers/instance'
import { exchange, frame, headers } from '../helpers/rawsocket'

interface Snapshot {
  disks: unknown
  devices: unknown
  map: unknown
  generation: number
}

/** Disks, devices (as status reports them: the same records as the list commands), the map and the generation. */
async function snapshot(v: Instance): Promise<Snapshot> {
  const st = await v.status()
  return {
    disks: st.disks.map((d) => ({ ...d, openBy: undefined })),
    devices: st.devices,
    map: await v.diskMap('keep'),
    generation: st.controller.generation,
  }
}

test('bad input changes nothing and is answered clearly', async (t) => {
  const v = await vstorInstance(t)
  await v.startController()
  const d0 = await v.addDevice(40 * MiB, 'd0')
  await v.run(['disk', 'create', 'keep', '--size', '8M'])
  const before = await snapshot(v)

  const dir = path.join(v.dir, 'a-directory')
  fs.mkdirSync(dir)
  const tiny = v.makeFile(MiB + MiB / 2, 'tiny.bin')
  const fresh = v.makeFile(8 * MiB, 'fresh.bin')
  const copy = path.join(v.dir, 'copy-of-d0.bin')
  fs.copyFileSync(d0, copy)

  const cases: [string, string[], RegExp][] = [
    ['non-numeric size', ['disk', 'create', 'x', '--size', 'abc'], /size/i],
    ['zero size', ['disk', 'create', 'x', '--size', '0'], /size/i],
    ['negative size', ['disk', 'create', 'x', '--size=-5M'], /size/i],
    ['fractional bytes', ['disk', 'create', 'x', '--size', '1.5'], /size/i],
    ['unknown size suffix', ['disk', 'create', 'x', '--size', '4X'], /size/i],
    ['size beyond 2^53', ['disk', 'create', 'x', '--size', '99999999P'], /size/i],
    ['name with a slash', ['disk', 'create', 'a/b', '--size', '4M'], /name/i],
    ['name ..', ['disk', 'create', '..', '--size', '4M'], /name/i],
    ['name too long for a file', ['disk', 'create', 'n'.repeat(300), '--size', '4M'], /name/i],
    ['duplicate disk name', ['disk', 'create', 'keep', '--size', '4M'], /keep/],
    ['size over free space', ['disk', 'create', 'big', '--size', '1G'], /space|free/i],
    ['unknown device for a disk', ['disk', 'create', 'x', '--size', '4M', '--device', 'nosuch'], /nosuch/],
    ['delete unknown disk', ['disk', 'delete', 'nosuch'], /nosuch/],
    ['map unknown disk', ['disk', 'map', 'nosuch'], /nosuch/],
    ['remove unknown device', ['device', 'remove', 'nosuch'], /nosuch/],
    ['remove a device in use', ['device', 'remove', 'd0'], /d0|use|busy/i],
    ['add a missing path', ['device', 'add', path.join(v.dir, 'missing.bin')], /missing\.bin/],
    ['add a directory', ['device', 'add', dir], /director/i],
    ['add a too small file', ['device', 'add', tiny], /small|at least/i],
    ['add the same device twice', ['device', 'add', d0, '--name', 'again'], /label|already/i],
    ['add a copy of a labelled device', ['device', 'add', copy, '--name', 'copy'], /label|already/i],
    ['duplicate device name', ['device', 'add', fresh, '--name', 'd0'], /d0/],
    ['bad device name', ['device', 'add', fresh, '--name', 'x/y'], /name/i],
  ]
  for (const [what, args, re] of cases) {
    await t.test(what, async () => {
      const r = await v.run(args, { expectFail: true })
      assert.equal(r.code, 1, `exit code of vstor ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^vstor: /, 'stderr starts with "vstor: "')
      assert.match(r.stderr, re)
      assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, 'no stack trace for a user error')
      assert.deepEqual(await snapshot(v), before)
    })
  }

  await t.test('--json errors are {"error":{code,message}}', async () => {
    const r = await v.run<{ error?: { code?: unknown; message?: unknown } }>(['disk', 'map', 'nosuch'], { json: true, expectFail: true })
    assert.equal(r.code, 1)
    assert.equal(typeof r.json?.error?.code, 'string')
    assert.match(String(r.json?.error?.message), /nosuch/)
  })

  const sneaky = { t: 'req', id: 7, method: 'disk.create', params: { name: 'sneaky', size: 4 * MiB } }
  const hello = { t: 'hello', id: 1, protocol: PROTOCOL_VERSION, role: 'cli' }
  const garbage: [string, Buffer[], boolean?][] = [
    ['random bytes', [crypto.randomBytes(4096)]],
    ['a huge length prefix', [Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2]), Buffer.from('{}')]],
    ['a header longer than the body', [Buffer.from([0, 0, 0, 2, 0, 0, 0, 9]), Buffer.from('{}')]],
    ['a body announced but never sent', [Buffer.from([0, 0x10, 0, 0, 0, 0, 0, 2]), Buffer.from('{}')]],
    ['bad JSON', [frame('{"t":"hello",')]],
    ['JSON that is not an object', [frame('[1,2,3]')]],
    ['invalid UTF-8', [frame(Buffer.from([0xc3, 0x28, 0xff]).toString('latin1'))]],
    ['a request before hello', [frame(sneaky)]],
    ['a wrong protocol version', [frame({ ...hello, protocol: PROTOCOL_VERSION + 99 }), frame(sneaky)], true],
    ['a hello with a bad role', [frame({ ...hello, role: 'root' }), frame(sneaky)], true],
    [
      'bad params after hello',
      [
        frame(hello),
        frame({ t: 'req', id: 2, method: 'disk.create', params: { name: 5, size: 'big' } }),
        frame({ t: 'req', id: 3, method: 'extent.set', params: { name: 'keep', offset: -1, length: 1e300, set: ['bogus'], clear: [] } }),
        frame({ t: 'req', id: 4, method: 'no.such.method', params: {} }),
        frame({ t: 'req', id: 5, method: 'disk.create', params: null }),
      ],
      true,
    ],
  ]
  for (const [what, chunks, afterReply] of garbage) {
    await t.test(`socket: ${what}`, async () => {
      const x = await exchange(v.socket, chunks, { afterReply })
      for (const h of headers(x.received)) {
        // Whatever comes back is an error reply or a hello reply, never a result for a request.
        if (h.t === 'res' && h.id !== 1) assert.ok(h.error, `a garbage request got a result: ${JSON.stringify(h)}`)
      }
      assert.deepEqual(await snapshot(v), before)
    })
  }

  await t.test('bad params get error replies with the request id', async () => {
    const reqs = [
      frame({ t: 'req', id: 2, method: 'disk.create', params: { name: 5 } }),
      frame({ t: 'req', id: 3, method: 'nope', params: {} }),
    ]
    const x = await exchange(v.socket, [frame(hello), ...reqs], { afterReply: true })
    const hs = headers(x.received)
    const byId = new Map(hs.filter((h) => h.t === 'res').map((h) => [h.id, h]))
    assert.ok(byId.get(1) && !byId.get(1)?.error, `hello accepted: ${JSON.stringify(hs)}`)
    const e2 = byId.get(2)?.error as { code?: string } | undefined
    const e3 = byId.get(3)?.error as { code?: string } | undefined
    assert.equal(e2?.code, 'BAD_REQUEST', JSON.stringify(hs))
    assert.equal(e3?.code, 'UNKNOWN_METHOD', JSON.stringify(hs))
  })

  await t.test('a wrong protocol version is refused with PROTOCOL_VERSION', async () => {
    const x = await exchange(v.socket, [frame({ ...hello, protocol: PROTOCOL_VERSION + 99 })])
    const h = headers(x.received).find((f) => f.t === 'res')
    assert.equal((h?.error as { code?: string } | undefined)?.code, 'PROTOCOL_VERSION', JSON.stringify(headers(x.received)))
  })

  await t.test('a request before hello is not served', async () => {
    const x = await exchange(v.socket, [frame(sneaky)])
    assert.ok(
      x.closedByPeer || headers(x.received).every((h) => h.t === 'res' && h.error),
      'request before hello was answered without error',
    )
    assert.equal(
      (await v.diskList()).some((d) => d.name === 'sneaky'),
      false,
    )
  })

  await t.test('disk list, device list and disk map are as before', async () => {
    const st = await v.status()
    assert.deepEqual(await v.diskList(), st.disks)
    assert.deepEqual(await v.deviceList(), st.devices)
    assert.deepEqual(await v.diskMap('keep'), before.map)
    assert.deepEqual(await snapshot(v), before)
  })

  await t.test('the controller still works normally', async () => {
    await v.run(['disk', 'create', 'after', '--size', '4M'])
    assert.ok((await v.diskList()).some((d) => d.name === 'after'))
  })
})
