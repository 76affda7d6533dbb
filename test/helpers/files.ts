// File contents for end-to-end tests: random files with their checksums, and
// whole-image hashes read through the FUSE mount.
//
// Invariant: everything here is asynchronous I/O on the libuv pool or a child
// process, never a blocking call, so a test process reading an image served
// by a child agent can never stall its own timers and teardown.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export type Sums = Record<string, string>

export function sha256(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

/** sha256 of a whole file (an image on the mount, a loop device), streamed. */
export async function hashFile(file: string): Promise<string> {
  const h = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** Write files of random bytes (name → size) under dir, fsync each; returns their checksums. */
export async function writeRandomFiles(dir: string, sizes: Record<string, number>): Promise<Sums> {
  const sums: Sums = {}
  for (const [name, size] of Object.entries(sizes)) {
    const data = crypto.randomBytes(size)
    await fs.promises.mkdir(path.dirname(path.join(dir, name)), { recursive: true })
    const fh = await fs.promises.open(path.join(dir, name), 'w')
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    sums[name] = sha256(data)
  }
  return sums
}

/** Checksums of the named files under dir ('missing' for a file that is not there). */
export async function sumFiles(dir: string, names: string[]): Promise<Sums> {
  const out: Sums = {}
  for (const n of names) {
    const data = await fs.promises.readFile(path.join(dir, n)).catch(() => null)
    out[n] = data ? sha256(data) : 'missing'
  }
  return out
}
