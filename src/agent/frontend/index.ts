// The agent's FUSE front end: libfuse 3 (native/fuse3, the default when built) or fuse-native
// (libfuse 2). Invariants: both take the same fuse-native-shaped handlers and the same mount
// options (MOUNT_OPTIONS + extras; Fuse3 maps the libfuse-2-only ones); asking for libfuse3 when
// it is not built is an error, never a silent fallback.
//
// Difference between them after a crash: libfuse 3 implements auto_unmount only through
// fusermount3 (not installed: the Debian fuse3 package would remove fuse), so a SIGKILLed
// libfuse3 agent leaves its mount answering ENOTCONN until the next `vstor mount` or
// `vstor unmount` on it clears it (prepareMountpoint, unmountAgent); fuse-native's fusermount
// removes it at once.

import { VstorError } from '../../errors'
import { Fuse3, fuse3Available } from './fuse3'
import { makeFuse, MOUNT_OPTIONS, type FuseInstance, type Ops } from './fuse-native'

export const FRONTENDS = ['libfuse3', 'fuse-native'] as const
export type FrontendName = (typeof FRONTENDS)[number]

export interface Frontend {
  /** Which front end serves the mount (the agent logs it and reports it in status). */
  readonly name: FrontendName
  readonly fuse: FuseInstance
}

/** A --fuse value, checked. */
export function parseFrontend(value: string): FrontendName {
  if ((FRONTENDS as readonly string[]).includes(value)) return value as FrontendName
  throw new VstorError('BAD_ARGUMENT', `--fuse must be one of ${FRONTENDS.join(', ')} (got "${value}")`)
}

/** The requested front end (libfuse3 must be built), or libfuse3 when built, else fuse-native. */
export function pickFrontend(requested?: FrontendName): FrontendName {
  const built = fuse3Available()
  if (requested === 'libfuse3' && !built) {
    throw new VstorError('MOUNT_FAILED', 'the libfuse3 front end is not built (native/fuse3: run bin/setup), use --fuse fuse-native')
  }
  return requested ?? (built ? 'libfuse3' : 'fuse-native')
}

/**
 * A front end over the agent's handlers, with vstor's mount options plus extra.
 * libfuse3 opens carry FOPEN_PARALLEL_DIRECT_WRITES: direct writes from several threads to one image
 * no longer serialize on its inode lock (bench/pdw.ts: 2-3x with 4 writers). The images never
 * grow by a write, so the kernel may run them in parallel; the agent orders overlapping ones per
 * range anyway. VSTOR_PARALLEL_DIRECT_WRITES=0 turns it off (for comparison).
 */
export function makeFrontend(name: FrontendName, mnt: string, ops: Ops, extra: string[]): Frontend {
  const parallelDirectWrites = process.env.VSTOR_PARALLEL_DIRECT_WRITES !== '0'
  const fuse =
    name === 'libfuse3' ? new Fuse3(mnt, ops, { options: [...MOUNT_OPTIONS, ...extra], parallelDirectWrites }) : makeFuse(mnt, ops, extra)
  return { name, fuse }
}
