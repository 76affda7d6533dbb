// The libfuse 2 front end: fuse-native 2.2.6 with vstor's mount options.
//
// Invariants: mounted with timeout:false (fuse-native's 15 s ETIMEDOUT never fires; the agent
// enforces its own fault timeout) and direct_io, so every read reaches the handlers. libfuse 2.9
// cannot ask for FUSE_ASYNC_DIO and clamps requests to 128 KiB (see fuse3.ts for the front end
// that can).

export type Ops = Record<string, (...args: never[]) => void>

export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: Error | null) => void): void
}
interface NativeFuse extends FuseInstance {
  _fuseOptions(): string
}
interface FuseClass {
  new (mnt: string, ops: Ops, opts: Record<string, unknown>): NativeFuse
}

/** Mount options for both front ends (fuse3.ts maps the libfuse-2-only ones). */
export const MOUNT_OPTIONS = [
  'big_writes',
  'max_write=1048576',
  'max_read=1048576',
  'fsname=vstor',
  'subtype=vstor',
  'allow_other',
  'direct_io',
  'entry_timeout=0',
  'negative_timeout=0',
  'attr_timeout=0',
]

let FuseNative: FuseClass | null = null

/** fuse-native's Fuse with our mount options appended. */
export function makeFuse(mnt: string, ops: Ops, extra: string[]): FuseInstance {
  // fuse-native ships no types; loaded on first use so a libfuse 3 agent never loads libfuse 2.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  FuseNative ??= require('fuse-native') as FuseClass
  class VstorFuse extends FuseNative {
    override _fuseOptions(): string {
      const base = super._fuseOptions()
      const mine = [...MOUNT_OPTIONS, ...extra].join(',')
      return base ? `${base},${mine}` : `-o${mine}`
    }
  }
  return new VstorFuse(mnt, ops, { timeout: false })
}
