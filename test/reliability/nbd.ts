// Backing devices with faults on demand: a file served by nbdkit (with
// filters: error, pause …) and shown as a plain file by nbdfuse.
//
// Invariants: nbdfuse is unmounted and both daemons are killed (by their own
// pids) at the instance's teardown, after vstor is stopped; the device file
// exists with its full size before the helper returns.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { waitFor, type Instance } from '../helpers/instance'
import { forceUnmount, killIfOurs, sh } from '../helpers/proc'

export interface NbdDevice {
  /** The file to `device add` (nbdfuse's view of the export). */
  file: string
  /** The backing file nbdkit serves. */
  backing: string
  dir: string
}

/**
 * nbdkit FILTERS file BACKING PARAMS, on a Unix socket, shown as a file by nbdfuse.
 * fill: the byte every byte of the backing file holds before anyone sees the device.
 */
export async function nbdDevice(
  v: Instance,
  name: string,
  size: number,
  opts: { filters?: string[]; params?: string[]; fill?: number } = {},
): Promise<NbdDevice> {
  const dir = path.join(v.dir, `nbd-${name}`)
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt, { recursive: true })
  const backing = v.makeFile(size, `nbd-${name}.bin`, opts.fill === undefined ? {} : { fill: opts.fill })
  const sock = path.join(dir, 'sock')
  const kit = v.background('nbdkit', [
    '-f',
    '-U',
    sock,
    ...(opts.filters ?? []).map((f) => `--filter=${f}`),
    'file',
    backing,
    ...(opts.params ?? []),
  ])
  await waitFor('nbdkit socket', () => fs.existsSync(sock) || kit.child.exitCode !== null, 20_000)
  assert.equal(kit.child.exitCode, null, 'nbdkit exited at start')
  const pidFile = path.join(dir, 'nbdfuse.pid')
  const fuse = v.background('nbdfuse', ['-P', pidFile, mnt, '--unix', sock])
  v.onCleanup(async () => {
    await forceUnmount(mnt)
    if (fuse.child.pid) killIfOurs(fuse.child.pid, 'nbdfuse')
    if (kit.child.pid) killIfOurs(kit.child.pid, 'nbdkit')
  })
  const file = path.join(mnt, 'nbd')
  await waitFor('nbdfuse file', () => fs.existsSync(pidFile) && fs.existsSync(file), 20_000)
  assert.equal(fs.statSync(file).size, size)
  return { file, backing, dir }
}

/** Send one command to nbdkit's pause filter control socket and wait for its upper-case echo. */
export function pauseControl(sock: string, cmd: 'p' | 'r'): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock)
    const timer = setTimeout(() => (s.destroy(), reject(new Error(`no answer to '${cmd}' on ${sock}`))), 30_000)
    s.on('connect', () => s.write(cmd))
    s.on('data', (b: Buffer) => {
      if (!b.toString().includes(cmd.toUpperCase())) return
      clearTimeout(timer)
      s.destroy()
      resolve()
    })
    s.on('error', (e) => (clearTimeout(timer), reject(e)))
  })
}

/** Drop the page cache of a file, so reads reach its server (GNU dd: nocache with count=0). */
export async function dropCache(file: string): Promise<void> {
  await sh('dd', [`if=${file}`, 'iflag=nocache', 'count=0'])
}
