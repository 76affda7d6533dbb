// What a path is (regular file or block device) and how big: fstat for files; for block devices
// BLKGETSIZE64 through native/blkio, else /sys/dev/block/MAJOR:MINOR/size (fstat says 0 for them).
// Invariant: a size is exact bytes or an error (VstorError DEVICE_INVALID), never a guess.

import fs from 'node:fs/promises'
import type { Blkio } from './blkio'
import { VstorError } from '../errors'

export type DeviceKind = 'file' | 'block'

/** 'file' or 'block', or null for anything else (directory, character device, socket...). */
export function kindOf(st: { isFile(): boolean; isBlockDevice(): boolean }): DeviceKind | null {
  return st.isFile() ? 'file' : st.isBlockDevice() ? 'block' : null
}

/** Linux dev_t → "major:minor" (glibc's gnu_dev_major/minor encoding). */
export function devNumbers(rdev: number): string {
  const d = BigInt(rdev)
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)
  const minor = (d & 0xffn) | ((d >> 12n) & 0xffffff00n)
  return `${major}:${minor}`
}

/** Size in bytes of the block device open as fd: BLKGETSIZE64 when the addon is there, else sysfs. */
export async function blockDeviceSize(fd: number, rdev: number, path: string, blk: Blkio | null): Promise<number> {
  if (blk) {
    try {
      return blk.blockSize64(fd)
    } catch {
      // fall through to sysfs
    }
  }
  const file = `/sys/dev/block/${devNumbers(rdev)}/size`
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (e) {
    throw new VstorError('DEVICE_INVALID', `cannot read the size of block device ${path} from ${file}: ${(e as Error).message}`)
  }
  const sectors = Number(text.trim())
  if (!Number.isSafeInteger(sectors) || sectors < 0) {
    throw new VstorError('DEVICE_INVALID', `cannot read the size of block device ${path}: ${file} says '${text.trim()}'`)
  }
  return sectors * 512
}
