// Where vstor finds its controller and keeps its data. Every command takes
// --socket and --data-dir; the environment gives the defaults.

import path from 'node:path'

export const DEFAULT_SOCKET = '/run/vstor/vstor.sock'
export const DEFAULT_DATA_DIR = '/var/lib/vstor'

/** Allocation unit: disks are allocated in 1 MiB units (claim 15). */
export const UNIT = 2 ** 20
/** Each device keeps its first unit for the vstor label; data starts after it. */
export const LABEL_AREA = UNIT
/** Largest frame either side accepts on the socket (a 1M-extent table is ~21 MiB). */
export const MAX_FRAME = 256 * 2 ** 20
/** Protocol version spoken in hello. */
export const PROTOCOL_VERSION = 2

export function socketPath(flag?: string): string {
  return path.resolve(flag || process.env.VSTOR_SOCKET || DEFAULT_SOCKET)
}

export function dataDir(flag?: string): string {
  return path.resolve(flag || process.env.VSTOR_DATA_DIR || DEFAULT_DATA_DIR)
}
