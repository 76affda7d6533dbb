// Mount table helpers: read /proc/self/mountinfo, unmount FUSE mounts.
// Everything is async: a sync syscall on our own mount would deadlock the FUSE loop.

import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { VstorError } from '../errors'

export interface MountEntry {
  mountpoint: string
  fstype: string
  source: string
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))

export async function mountInfo(): Promise<MountEntry[]> {
  const text = await fs.promises.readFile('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    const [pre, post] = line.split(' - ')
    const f = (pre ?? '').split(' ')
    const g = (post ?? '').split(' ')
    out.push({ mountpoint: unescape(f[4] ?? ''), fstype: g[0] ?? '', source: unescape(g[1] ?? '') })
  }
  return out
}

export async function isMounted(mnt: string): Promise<boolean> {
  return (await mountInfo()).some((e) => e.mountpoint === mnt)
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0
      resolve({ code, stderr: String(stderr || (err && code === 127 ? err.message : '')) })
    })
  })
}

/** fusermount -u (or -uz when lazy), falling back to umount (-l). Busy → a clear VstorError. */
export async function fuseUnmount(mnt: string, lazy: boolean): Promise<void> {
  const a = await run('fusermount', lazy ? ['-uz', mnt] : ['-u', mnt])
  if (a.code === 0) return
  const b = await run('umount', lazy ? ['-l', mnt] : [mnt])
  if (b.code === 0) return
  const why = `${a.stderr.trim()} ${b.stderr.trim()}`
  if (/busy/i.test(why)) {
    throw new VstorError(
      'MOUNT_BUSY',
      `${mnt} is busy: close the files open on it, unmount file systems on its images and detach loop devices (\`losetup -d\`), then retry`,
    )
  }
  throw new VstorError('MOUNT_FAILED', `cannot unmount ${mnt}: ${why.trim()}`)
}
