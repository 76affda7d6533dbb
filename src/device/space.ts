// zero / discard / reserve on one device: the native call when there is one, the fallback when
// the addon is missing or the kernel answers "not supported".
//
// Invariants (what each promise means once it resolved):
//   * zero:    [pos, pos+len) reads zeros, and on a file its space is allocated (a later write
//              there cannot hit ENOSPC): ZERO_RANGE|KEEP_SIZE, else PUNCH_HOLE|KEEP_SIZE then
//              fallocate(KEEP_SIZE), else zero writes (which allocate); block: BLKZEROOUT, else
//              zero writes;
//   * discard: the range reads zeros; a file may give its space back (PUNCH_HOLE|KEEP_SIZE, else
//              as zero); block: BLKZEROOUT (BLKDISCARD does not promise zeros), else zero writes;
//   * reserve: contents unchanged; on a file with the addon the range is allocated
//              (fallocate(KEEP_SIZE)); block devices, no addon, or no fallocate support: nothing;
//   * a real failure (ENOSPC, EIO...) rejects with the errno error as the kernel gave it; only
//     "unsupported" answers (errno.ts) move on to a fallback, and a file system that said so once
//     is not asked again through this device.

import { fallocateP, zerooutP, type Blkio } from './blkio'
import { unsupportedFallocate, unsupportedIoctl } from './errno'
import { writeZeros } from './io'
import type { DeviceKind } from './stat'

export class Space {
  private zeroRange = true
  private punch = true
  private alloc = true

  constructor(
    private readonly path: string,
    private readonly kind: DeviceKind,
    private readonly blk: Blkio | null,
  ) {}

  async zero(fd: number, pos: number, len: number): Promise<void> {
    const b = this.blk
    if (!b) return writeZeros(fd, this.path, pos, len)
    if (this.kind === 'block') return this.zeroout(b, fd, pos, len)
    if (this.zeroRange) {
      try {
        return await fallocateP(b, fd, b.FALLOC_FL_ZERO_RANGE | b.FALLOC_FL_KEEP_SIZE, pos, len)
      } catch (e) {
        if (!unsupportedFallocate(e)) throw e
        this.zeroRange = false
      }
    }
    if (!(await this.punchHole(b, fd, pos, len))) return writeZeros(fd, this.path, pos, len)
    if (await this.allocate(b, fd, pos, len)) return
    return writeZeros(fd, this.path, pos, len)
  }

  async discard(fd: number, pos: number, len: number): Promise<void> {
    const b = this.blk
    if (!b) return writeZeros(fd, this.path, pos, len)
    if (this.kind === 'block') return this.zeroout(b, fd, pos, len)
    if (await this.punchHole(b, fd, pos, len)) return
    return this.zero(fd, pos, len)
  }

  async reserve(fd: number, pos: number, len: number): Promise<void> {
    const b = this.blk
    if (!b || this.kind === 'block') return
    await this.allocate(b, fd, pos, len)
  }

  private async zeroout(b: Blkio, fd: number, pos: number, len: number): Promise<void> {
    try {
      return await zerooutP(b, fd, pos, len)
    } catch (e) {
      if (!unsupportedIoctl(e)) throw e // EINVAL: not aligned to the logical block size
    }
    return writeZeros(fd, this.path, pos, len)
  }

  /** PUNCH_HOLE|KEEP_SIZE; false when the file system cannot. */
  private async punchHole(b: Blkio, fd: number, pos: number, len: number): Promise<boolean> {
    if (!this.punch) return false
    try {
      await fallocateP(b, fd, b.FALLOC_FL_PUNCH_HOLE | b.FALLOC_FL_KEEP_SIZE, pos, len)
      return true
    } catch (e) {
      if (!unsupportedFallocate(e)) throw e
      this.punch = false
      return false
    }
  }

  /** fallocate(KEEP_SIZE); false when the file system cannot. */
  private async allocate(b: Blkio, fd: number, pos: number, len: number): Promise<boolean> {
    if (!this.alloc) return false
    try {
      await fallocateP(b, fd, b.FALLOC_FL_KEEP_SIZE, pos, len)
      return true
    } catch (e) {
      if (!unsupportedFallocate(e)) throw e
      this.alloc = false
      return false
    }
  }
}
