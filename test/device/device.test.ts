// Device on regular files: the hot path in both I/O modes (same contract as the agent's Store),
// the label check at open, and close() that waits for in-flight requests and then refuses
// everything with EBADF.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import type { Store } from '../../src/agent/store'
import { IO_MODES, openDevice, writeLabel, type Device } from '../../src/device'
import { VstorError } from '../../src/errors'
import { allBytes, io, makeFile, MiB, peek, scope } from './helpers'

const uuid = '3f1d2a9c-0000-4000-8000-000000000001'
const label = { version: 1, uuid, controllerId: 'c', name: 'dev7', createdAt: '2026-01-01T00:00:00.000Z' }

for (const mode of IO_MODES) {
  test(`device (${mode}): positional round trip, EIO past the end, sync, promise forms`, async (t) => {
    const s = scope(t)
    const file = makeFile(path.join(s.tempDir(), 'dev'), MiB, 0xaa)
    const dev = await openDevice(file, { mode })
    s.defer(() => dev.close())
    assert.equal(dev.kind, 'file')
    assert.equal(dev.size, MiB)
    assert.equal(dev.uuid, '')
    assert.equal(dev.path, file)
    const store: Store = dev // the agent's Store interface: the switch is mechanical
    assert.ok(store)

    const data = Buffer.alloc(8192, 0x5c)
    assert.equal(await io((cb) => dev.write(data, 4096, 4096, 65536, cb)), null)
    const back = Buffer.alloc(12288)
    assert.equal(await io((cb) => dev.read(back, 0, 12288, 61440, cb)), null)
    assert.ok(allBytes(back.subarray(0, 4096), 0xaa), 'bytes before the write are untouched')
    assert.ok(allBytes(back.subarray(4096, 8192), 0x5c), 'the write landed at its offset')
    assert.ok(allBytes(back.subarray(8192), 0xaa), 'bytes after the write are untouched')

    const err = await io((cb) => dev.read(Buffer.alloc(4096), 0, 4096, MiB - 2048, cb))
    assert.equal(err?.code, 'EIO', 'a read that runs off the device is an error, never a short read')
    assert.equal(await io((cb) => dev.sync(cb)), null)
    await dev.syncP()
    assert.ok(allBytes(peek(file, 65536, 4096), 0x5c))

    await dev.writeAt(Buffer.alloc(4096, 0x11), 8192)
    const got = Buffer.alloc(4096)
    await dev.readAt(got, 8192)
    assert.ok(allBytes(got, 0x11))
    await assert.rejects(dev.readAt(Buffer.alloc(4096), MiB - 1024), { code: 'EIO' })
    await dev.writeBehind(8192, 4096) // advice: resolves, the bytes stay
    await dev.readAt(got, 8192)
    assert.ok(allBytes(got, 0x11))
    assert.equal(dev.inflight, 0)
  })
}

test('device (sync): read/write call back before they return', async (t) => {
  const s = scope(t)
  const dev = await openDevice(makeFile(path.join(s.tempDir(), 'dev'), MiB), { mode: 'sync' })
  s.defer(() => dev.close())
  let calls = 0
  dev.write(Buffer.alloc(512, 1), 0, 512, 0, (err) => {
    assert.equal(err, null)
    assert.equal(dev.inflight, 0)
    calls++
  })
  dev.read(Buffer.alloc(512), 0, 512, 0, () => calls++)
  assert.equal(calls, 2)
})

test('device: the label check at open (match, another label, none, damaged) and open errors', async (t) => {
  const s = scope(t)
  const dir = s.tempDir()
  const file = makeFile(path.join(dir, 'dev'), 4 * MiB)
  const mismatch = (found: RegExp) => (e: unknown) => {
    assert.ok(e instanceof VstorError)
    assert.equal(e.code, 'DEVICE_MISMATCH')
    assert.equal(e.exitCode, 1)
    assert.ok(e.message.includes(file), 'names the path')
    assert.ok(e.message.includes(`expected ${uuid}`), 'names the uuid it wanted')
    assert.match(e.message, found)
    assert.match(e.message, /find the device whose label is/, 'says what to do')
    return true
  }
  const fds = () => fs.readdirSync('/proc/self/fd').length
  const before = fds()
  await assert.rejects(openDevice(file, { uuid }), mismatch(/carries no vstor label/))
  await writeLabel(file, { ...label, uuid: 'aaaaaaaa-0000-4000-8000-000000000002', name: 'other' })
  await assert.rejects(openDevice(file, { uuid }), mismatch(/carries label aaaaaaaa-0000-4000-8000-000000000002 \(device 'other'\)/))
  fs.writeFileSync(file, 'VSTORLBL\n{not json', { flag: 'r+' })
  await assert.rejects(openDevice(file, { uuid }), mismatch(/carries a damaged vstor label/))
  assert.equal(fds(), before, 'a refused open leaves no fd behind')

  await writeLabel(file, label)
  const dev = await openDevice(file, { uuid, mode: 'sync' })
  s.defer(() => dev.close())
  assert.equal(dev.uuid, uuid)

  await assert.rejects(openDevice(path.join(dir, 'missing')), { code: 'ENOENT' })
  assert.equal(fs.existsSync(path.join(dir, 'missing')), false, 'never O_CREAT')
  await assert.rejects(openDevice(dir), { code: 'EISDIR' })
  await assert.rejects(openDevice('/dev/null'), (e: unknown) => e instanceof VstorError && e.code === 'DEVICE_INVALID')
  await assert.rejects(openDevice(file, { mode: 'fast' as never }), (e: unknown) => e instanceof VstorError && e.code === 'BAD_ARGUMENT')
})

test('device: close() resolves only after every in-flight request called back; then EBADF', async (t) => {
  const s = scope(t)
  const dir = s.tempDir()
  const file = makeFile(path.join(dir, 'dev'), 16 * MiB)
  const dev: Device = await openDevice(file, { mode: 'async' })
  s.defer(() => dev.close())
  const fd = dev.fd
  const order: string[] = []
  const chunk = Buffer.alloc(MiB, 0x42)
  for (let i = 0; i < 8; i++) dev.write(chunk, 0, MiB, i * MiB, (err) => order.push(`write${i}:${err?.code ?? 'ok'}`))
  dev.read(Buffer.alloc(MiB), 0, MiB, 0, (err) => order.push(`read:${err?.code ?? 'ok'}`))
  dev.sync((err) => order.push(`sync:${err?.code ?? 'ok'}`))
  const side = [
    dev.readAt(Buffer.alloc(4096), 12 * MiB).then(() => order.push('readAt')),
    dev.zero(8 * MiB, 2 * MiB).then(() => order.push('zero')),
    dev.reserve(10 * MiB, MiB).then(() => order.push('reserve')),
  ]
  assert.equal(dev.inflight, 13)

  const closing = dev.close()
  assert.equal(dev.close(), closing, 'close is idempotent: one promise')
  assert.equal(dev.fd, fd, 'the fd stays open while requests are in flight')
  const late: Promise<unknown>[] = [
    io((cb) => dev.read(Buffer.alloc(4096), 0, 4096, 0, cb)).then((e) => order.push(`late read:${e?.code}`)),
    io((cb) => dev.write(chunk, 0, 4096, 0, cb)).then((e) => order.push(`late write:${e?.code}`)),
    io((cb) => dev.sync(cb)).then((e) => order.push(`late sync:${e?.code}`)),
    assert.rejects(dev.zero(0, 4096), { code: 'EBADF' }),
    assert.rejects(dev.writeAt(chunk, 0), { code: 'EBADF' }),
  ]
  await closing
  order.push('closed')
  await Promise.all([...side, ...late])

  const closedAt = order.indexOf('closed')
  for (const want of ['read:ok', 'sync:ok', 'readAt', 'zero', 'reserve', ...Array.from({ length: 8 }, (_, i) => `write${i}:ok`)]) {
    const at = order.indexOf(want)
    assert.ok(at >= 0 && at < closedAt, `${want} called back before close() resolved: ${order.join(', ')}`)
  }
  for (const op of ['read', 'write', 'sync']) assert.ok(order.includes(`late ${op}:EBADF`), `a ${op} after close() fails EBADF`)
  assert.equal(dev.inflight, 0)
  assert.equal(dev.fd, -1)
  await dev.close()

  // The fd number may now belong to another file: a request on the closed device must not reach it.
  const other = makeFile(path.join(dir, 'other'), MiB, 0x77)
  const ofd = fs.openSync(other, 'r+')
  s.defer(() => fs.closeSync(ofd))
  assert.equal((await io((cb) => dev.write(chunk, 0, 4096, 0, cb)))?.code, 'EBADF')
  assert.ok(allBytes(peek(other, 0, MiB), 0x77), 'the file that got the fd number is untouched')
  assert.ok(allBytes(peek(file, 0, 8 * MiB), 0x42), 'every in-flight write landed')
})

test('device (sync): close() with nothing in flight, from inside a callback', async (t) => {
  const s = scope(t)
  const dev = await openDevice(makeFile(path.join(s.tempDir(), 'dev'), MiB), { mode: 'sync' })
  let closing: Promise<void> | null = null
  dev.read(Buffer.alloc(512), 0, 512, 0, () => {
    closing = dev.close()
  })
  assert.ok(closing)
  await closing
  assert.equal(dev.fd, -1)
  assert.equal((await io((cb) => dev.read(Buffer.alloc(512), 0, 512, 0, cb)))?.code, 'EBADF')
})
