// Labels (moved from the controller): encode/decode, write/read/wipe with fsync, probe.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { LABEL_AREA, UNIT } from '../../src/config'
import {
  decodeLabel,
  encodeLabel,
  LABEL_MAGIC,
  LABEL_SIZE,
  probe,
  readLabel,
  UNREADABLE,
  wipeLabel,
  writeLabel,
} from '../../src/device/label'
import { VstorError } from '../../src/errors'
import { allBytes, makeFile, MiB, peek, scope } from './helpers'

const label = {
  version: 1,
  uuid: '8c0e4a8e-4d0b-4a0e-9d0e-0c5b7f7e2a11',
  controllerId: 'c1',
  name: 'dev0',
  createdAt: '2026-01-01T00:00:00.000Z',
}

test('label: encode is 4 KiB of magic + JSON, zero padded; decode round-trips; junk is unreadable', () => {
  const buf = encodeLabel(label)
  assert.equal(buf.length, LABEL_SIZE)
  assert.equal(buf.toString('latin1', 0, LABEL_MAGIC.length), 'VSTORLBL\n')
  assert.deepEqual(decodeLabel(buf), label)
  assert.equal(decodeLabel(Buffer.alloc(LABEL_SIZE)), null)
  assert.equal(decodeLabel(buf, 4), null, 'a short read has no magic')
  const junk = Buffer.alloc(LABEL_SIZE)
  junk.write(LABEL_MAGIC + '{"uuid": ')
  assert.equal(decodeLabel(junk)?.uuid, UNREADABLE)
  assert.throws(
    () => encodeLabel({ ...label, name: 'x'.repeat(LABEL_SIZE) }),
    (e: unknown) => e instanceof VstorError && e.code === 'INTERNAL',
  )
})

test('label: write, read, wipe on a file (never creates one)', async (t) => {
  const dir = scope(t).tempDir()
  const file = makeFile(path.join(dir, 'dev'), 4 * MiB, 0xaa)
  await writeLabel(file, label)
  assert.deepEqual(await readLabel(file), label)
  assert.ok(allBytes(peek(file, LABEL_SIZE, MiB), 0xaa), 'nothing past the label block is touched')
  await wipeLabel(file)
  assert.equal(await readLabel(file), null)
  assert.ok(allBytes(peek(file, 0, LABEL_SIZE), 0))
  await assert.rejects(writeLabel(path.join(dir, 'missing'), label), { code: 'ENOENT' })
  assert.equal(fs.existsSync(path.join(dir, 'missing')), false)
})

test('label: probe reports kind, size and label; refuses directories, missing, small and odd files', async (t) => {
  const dir = scope(t).tempDir()
  const file = makeFile(path.join(dir, 'dev'), LABEL_AREA + UNIT)
  assert.deepEqual(await probe(file), { path: file, kind: 'file', size: LABEL_AREA + UNIT, label: null })
  await writeLabel(file, label)
  assert.deepEqual((await probe(file)).label, label)
  const code = (c: string) => (e: unknown) => e instanceof VstorError && e.code === c
  await assert.rejects(probe(dir), code('DEVICE_INVALID'))
  await assert.rejects(probe(path.join(dir, 'nope')), code('DEVICE_INVALID'))
  await assert.rejects(probe('/dev/null'), code('DEVICE_INVALID'))
  await assert.rejects(probe(makeFile(path.join(dir, 'small'), LABEL_AREA + UNIT - 1)), code('DEVICE_TOO_SMALL'))
})
