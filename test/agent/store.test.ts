// FileStore in both I/O modes: the same contract (whole transfers, EIO past
// the end, one callback) whether the I/O runs inline or on the thread pool.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'node:test'
import { FileStore, IO_MODES, type Store } from '../../src/agent/store'

const io = (f: (cb: (err: NodeJS.ErrnoException | null) => void) => void): Promise<NodeJS.ErrnoException | null> =>
  new Promise((resolve) => {
    let calls = 0
    f((err) => {
      calls++
      assert.equal(calls, 1, 'callback fires once')
      resolve(err)
    })
  })

for (const mode of IO_MODES) {
  test(`FileStore (${mode}): positional round trip, EIO past the end, sync`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-store-'))
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    const file = path.join(dir, 'dev')
    fs.writeFileSync(file, Buffer.alloc(1 << 20, 0xaa))
    const store: Store = await FileStore.open(file, mode)
    t.after(() => store.close())

    const data = Buffer.alloc(8192, 0x5c)
    assert.equal(await io((cb) => store.write(data, 4096, 4096, 65536, cb)), null)
    const back = Buffer.alloc(12288)
    assert.equal(await io((cb) => store.read(back, 0, 12288, 61440, cb)), null)
    assert.ok(
      back.subarray(0, 4096).every((b) => b === 0xaa),
      'bytes before the write are untouched',
    )
    assert.ok(
      back.subarray(4096, 8192).every((b) => b === 0x5c),
      'the write landed at its offset',
    )
    assert.ok(
      back.subarray(8192).every((b) => b === 0xaa),
      'bytes after the write are untouched',
    )

    const err = await io((cb) => store.read(Buffer.alloc(4096), 0, 4096, (1 << 20) - 2048, cb))
    assert.equal(err?.code, 'EIO', 'a read that runs off the device is an error, never a short read')
    assert.equal(await io((cb) => store.sync(cb)), null)
    assert.equal(
      fs
        .readFileSync(file)
        .subarray(65536, 65536 + 4096)
        .every((b) => b === 0x5c),
      true,
    )
  })
}
