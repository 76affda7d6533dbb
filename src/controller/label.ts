// Device labels and probing. The first 4 KiB of a device hold the label:
// magic "VSTORLBL\n" then JSON {version, uuid, controllerId, name, createdAt},
// zero padded. Data never goes below LABEL_AREA, so the label is never in a disk.

import fs from 'node:fs'
import path from 'node:path'
import { LABEL_AREA, UNIT } from '../config'
import { VstorError } from '../errors'

export const LABEL_SIZE = 4096
const MAGIC = 'VSTORLBL\n'

export interface Label {
  version: number
  uuid: string
  controllerId: string
  name: string
  createdAt: string
}

export interface Probe {
  path: string
  kind: 'file' | 'block'
  size: number
  label: Label | null
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code
}

/** Size of a block device from sysfs (fstat reports 0 for them). */
function blockSize(rdev: number, p: string): number {
  const major = Math.floor(rdev / 256) % 4096
  const minor = (rdev % 256) + Math.floor(rdev / 1048576) * 256
  const file = `/sys/dev/block/${major}:${minor}/size`
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) * 512
  } catch {
    throw new VstorError('DEVICE_INVALID', `cannot read the size of block device ${p} from ${file}`)
  }
}

/** Check a path can become a device: exists, file or block device, big enough, free, unlabelled. */
export function probe(input: string): Probe {
  const p = path.resolve(input)
  let st: fs.Stats
  try {
    st = fs.statSync(p)
  } catch (e) {
    throw new VstorError('DEVICE_INVALID', `cannot use ${p}: ${errno(e) === 'ENOENT' ? 'no such file or device' : (e as Error).message}`)
  }
  if (st.isDirectory()) throw new VstorError('DEVICE_INVALID', `cannot use ${p}: it is a directory; give a regular file or a block device`)
  if (!st.isFile() && !st.isBlockDevice()) throw new VstorError('DEVICE_INVALID', `cannot use ${p}: not a regular file or block device`)
  const kind = st.isFile() ? 'file' : 'block'
  let fd: number
  try {
    fd = fs.openSync(p, kind === 'block' ? fs.constants.O_RDWR | fs.constants.O_EXCL : fs.constants.O_RDWR)
  } catch (e) {
    if (errno(e) === 'EBUSY') throw new VstorError('DEVICE_IN_USE', `${p} is in use (mounted or opened exclusively); stop using it first`)
    throw new VstorError('DEVICE_INVALID', `cannot open ${p} for writing: ${(e as Error).message}`)
  }
  try {
    const size = kind === 'file' ? st.size : blockSize(st.rdev, p)
    if (size < LABEL_AREA + UNIT) {
      throw new VstorError(
        'DEVICE_TOO_SMALL',
        `${p} has ${size} bytes; a device needs at least ${LABEL_AREA + UNIT} (1 MiB label area plus one 1 MiB unit)`,
      )
    }
    return { path: p, kind, size, label: readLabelFd(fd) }
  } finally {
    fs.closeSync(fd)
  }
}

function readLabelFd(fd: number): Label | null {
  const buf = Buffer.alloc(LABEL_SIZE)
  const n = fs.readSync(fd, buf, 0, LABEL_SIZE, 0)
  if (n < MAGIC.length || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return null
  const end = buf.indexOf(0, MAGIC.length)
  try {
    return JSON.parse(buf.toString('utf8', MAGIC.length, end < 0 ? n : end)) as Label
  } catch {
    return { version: 0, uuid: 'unreadable', controllerId: '', name: '', createdAt: '' }
  }
}

export function readLabel(p: string): Label | null {
  const fd = fs.openSync(p, 'r')
  try {
    return readLabelFd(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Write the label block at offset 0 and fsync before returning. */
export function writeLabel(p: string, label: Label): void {
  const buf = Buffer.alloc(LABEL_SIZE)
  const text = MAGIC + JSON.stringify(label)
  if (Buffer.byteLength(text) > LABEL_SIZE) throw new VstorError('INTERNAL', 'label does not fit in 4 KiB')
  buf.write(text, 0, 'utf8')
  writeBlock(p, buf)
}

/** Overwrite the label block with zeros (fsync'd). */
export function wipeLabel(p: string): void {
  writeBlock(p, Buffer.alloc(LABEL_SIZE))
}

function writeBlock(p: string, buf: Buffer): void {
  const fd = fs.openSync(p, fs.constants.O_RDWR)
  try {
    fs.writeSync(fd, buf, 0, buf.length, 0)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
