// Shared pieces for the device-layer tests: a LIFO cleanup scope per test (temp dirs, tmpfs
// mounts, loop devices, open devices are undone in reverse order even when the test failed),
// the root requirement (skip without root, fail under CI=true), and a callback-once probe.
//
// Invariant: nothing a test sets up outlives it: a mount is unmounted before its directory is
// removed, a loop device is detached before its backing file goes, and a directory that is still
// a mount point is never removed.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'

export const MiB = 2 ** 20
export const run = promisify(execFile)

export interface Scope {
  /** Run fn at teardown; the last deferred runs first. */
  defer(fn: () => unknown): void
  /** A fresh temp dir, removed at teardown. */
  tempDir(prefix?: string): string
  /** A tmpfs of `size` (e.g. '8m') on a fresh temp dir, unmounted at teardown (root). */
  tmpfs(size: string): Promise<string>
  /** `losetup --find --show file`, detached at teardown (root). */
  loop(file: string): Promise<string>
}

export function scope(t: TestContext): Scope {
  const stack: (() => unknown)[] = []
  t.after(async () => {
    const errors: unknown[] = []
    for (const fn of stack.reverse()) {
      try {
        await fn()
      } catch (e) {
        errors.push(e)
      }
    }
    if (errors.length) throw errors[0]
  })
  const s: Scope = {
    defer: (fn) => void stack.push(fn),
    tempDir(prefix = 'vstor-device-') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
      s.defer(() => fs.rmSync(dir, { recursive: true, force: true }))
      return dir
    },
    async tmpfs(size) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-device-tmpfs-'))
      try {
        await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
      } catch (e) {
        fs.rmdirSync(dir)
        throw e
      }
      s.defer(async () => {
        await run('umount', [dir]) // throws when busy: then the directory stays, never removed through a mount
        fs.rmdirSync(dir)
      })
      return dir
    },
    async loop(file) {
      const dev = (await run('losetup', ['--find', '--show', file])).stdout.trim()
      assert.match(dev, /^\/dev\/loop\d+$/)
      s.defer(() => run('losetup', ['-d', dev]))
      return dev
    },
  }
  return s
}

/** True when root; without root skip the test, or fail it under CI=true. */
export function needRoot(t: TestContext, what: string): boolean {
  if (process.getuid?.() === 0) return true
  if (process.env.CI) throw new Error(`${what} needs root; under CI this is a failure`)
  t.skip(`${what} needs root`)
  return false
}

/** Call f with a callback; resolve with its error once it was called, asserting it is called exactly once. */
export function io(f: (cb: (err: NodeJS.ErrnoException | null) => void) => void): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    let calls = 0
    f((err) => {
      calls++
      assert.equal(calls, 1, 'callback fires once')
      resolve(err)
    })
  })
}

/** A file of size bytes: sparse, or filled with one byte value. */
export function makeFile(file: string, size: number, fill?: number): string {
  const fd = fs.openSync(file, 'w')
  try {
    fs.ftruncateSync(fd, size)
    if (fill !== undefined) {
      const chunk = Buffer.alloc(Math.min(size, 4 * MiB), fill)
      for (let off = 0; off < size; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off)
    }
  } finally {
    fs.closeSync(fd)
  }
  return file
}

/** len bytes of path at pos, read with plain fs. */
export function peek(file: string, pos: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(len)
    const n = fs.readSync(fd, buf, 0, len, pos)
    return buf.subarray(0, n)
  } finally {
    fs.closeSync(fd)
  }
}

export const allBytes = (buf: Buffer, b: number): boolean => buf.every((x) => x === b)

/** Bytes the file system allocated to a file (st_blocks × 512). */
export const allocated = (file: string): number => fs.statSync(file).blocks * 512

/** The addon, or null (and the test skipped, or failed under CI) when it is not built. */
export function needAddon<T>(t: TestContext, addon: T | null): addon is T {
  if (addon) return true
  if (process.env.CI) throw new Error('native/blkio is not built (bin/setup builds it); under CI this is a failure')
  t.skip('native/blkio is not built')
  return false
}
