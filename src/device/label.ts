// Device labels and probing. The first 4 KiB of a device hold the label:
// magic "VSTORLBL\n" then JSON {version, uuid, controllerId, name, createdAt},
// zero padded. Data never goes below LABEL_AREA, so the label is never in a disk.
//
// Invariants: everything here is async (the controller's event loop never waits on a device);
// writeLabel / wipeLabel fsync before they resolve; a label block that has the magic but no
// parseable JSON reads as uuid 'unreadable' (so it is neither empty nor anyone's device).

import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { LABEL_AREA, UNIT } from '../config'
import { VstorError } from '../errors'
import { loadBlkio } from './blkio'
import { blockDeviceSize, kindOf, type DeviceKind } from './stat'

export const LABEL_SIZE = 4096
export const LABEL_MAGIC = 'VSTORLBL\n'
/** The uuid of a label block whose JSON does not parse. */
export const UNREADABLE = 'unreadable'

export interface Label {
  version: number
  uuid: string
  controllerId: string
  name: string
  createdAt: string
}

export interface Probe {
  path: string
  kind: DeviceKind
  size: number
  label: Label | null
}

const openP = promisify(fs.open)
const closeP = promisify(fs.close)
const fstatP = promisify(fs.fstat)
const readP = promisify(fs.read)
const writeP = promisify(fs.write)
const fsyncP = promisify(fs.fsync)

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code
}

/** The label block for a label (4 KiB, zero padded). */
export function encodeLabel(label: Label): Buffer {
  const text = LABEL_MAGIC + JSON.stringify(label)
  if (Buffer.byteLength(text) > LABEL_SIZE) throw new VstorError('INTERNAL', 'label does not fit in 4 KiB')
  const buf = Buffer.alloc(LABEL_SIZE)
  buf.write(text, 0, 'utf8')
  return buf
}

/** The label in the first n bytes of buf, or null when there is no magic. */
export function decodeLabel(buf: Buffer, n = buf.length): Label | null {
  if (n < LABEL_MAGIC.length || buf.toString('latin1', 0, LABEL_MAGIC.length) !== LABEL_MAGIC) return null
  const end = buf.indexOf(0, LABEL_MAGIC.length)
  try {
    const l = JSON.parse(buf.toString('utf8', LABEL_MAGIC.length, end < 0 || end > n ? n : end)) as Label
    if (l && typeof l === 'object' && typeof l.uuid === 'string') return l
  } catch {
    // fall through
  }
  return { version: 0, uuid: UNREADABLE, controllerId: '', name: '', createdAt: '' }
}

/** The label of the device open as fd (positional read at 0; the fd's offset is untouched). */
export async function readLabelFd(fd: number): Promise<Label | null> {
  const buf = Buffer.alloc(LABEL_SIZE)
  let n = 0
  while (n < LABEL_SIZE) {
    const { bytesRead } = await readP(fd, buf, n, LABEL_SIZE - n, n)
    if (bytesRead === 0) break
    n += bytesRead
  }
  return decodeLabel(buf, n)
}

export async function readLabel(p: string): Promise<Label | null> {
  const fd = await openP(p, fs.constants.O_RDONLY)
  try {
    return await readLabelFd(fd)
  } finally {
    await closeP(fd)
  }
}

/** Write the label block at offset 0 and fsync before resolving. */
export async function writeLabel(p: string, label: Label): Promise<void> {
  await writeBlock(p, encodeLabel(label))
}

/** Overwrite the label block with zeros (fsync'd). */
export async function wipeLabel(p: string): Promise<void> {
  await writeBlock(p, Buffer.alloc(LABEL_SIZE))
}

async function writeBlock(p: string, buf: Buffer): Promise<void> {
  const fd = await openP(p, fs.constants.O_RDWR) // never O_CREAT: a missing device must not become a file
  try {
    for (let done = 0; done < buf.length;) {
      const { bytesWritten } = await writeP(fd, buf, done, buf.length - done, done)
      if (bytesWritten === 0) throw new VstorError('DEVICE_INVALID', `writing the label of ${p} made no progress`)
      done += bytesWritten
    }
    await fsyncP(fd)
  } finally {
    await closeP(fd)
  }
}

/** Check a path can become a device: exists, file or block device, big enough, free; with its label if any. */
export async function probe(input: string): Promise<Probe> {
  const p = path.resolve(input)
  let st: fs.Stats
  try {
    st = await fs.promises.stat(p)
  } catch (e) {
    throw new VstorError('DEVICE_INVALID', `cannot use ${p}: ${errno(e) === 'ENOENT' ? 'no such file or device' : (e as Error).message}`)
  }
  if (st.isDirectory()) throw new VstorError('DEVICE_INVALID', `cannot use ${p}: it is a directory; give a regular file or a block device`)
  const kind = kindOf(st)
  if (!kind) throw new VstorError('DEVICE_INVALID', `cannot use ${p}: not a regular file or block device`)
  let fd: number
  try {
    // O_EXCL on a block device fails with EBUSY while it is mounted or held by another exclusive opener.
    fd = await openP(p, kind === 'block' ? fs.constants.O_RDWR | fs.constants.O_EXCL : fs.constants.O_RDWR)
  } catch (e) {
    if (errno(e) === 'EBUSY') throw new VstorError('DEVICE_IN_USE', `${p} is in use (mounted or opened exclusively); stop using it first`)
    throw new VstorError('DEVICE_INVALID', `cannot open ${p} for writing: ${(e as Error).message}`)
  }
  try {
    const size = kind === 'file' ? (await fstatP(fd)).size : await blockDeviceSize(fd, st.rdev, p, loadBlkio())
    if (size < LABEL_AREA + UNIT) {
      throw new VstorError(
        'DEVICE_TOO_SMALL',
        `${p} has ${size} bytes; a device needs at least ${LABEL_AREA + UNIT} (1 MiB label area plus one 1 MiB unit)`,
      )
    }
    return { path: p, kind, size, label: await readLabelFd(fd) }
  } finally {
    await closeP(fd)
  }
}
