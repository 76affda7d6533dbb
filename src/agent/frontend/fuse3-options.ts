// Fuse3's options: fuse-native-style mount option strings mapped onto libfuse 3, plus the
// tunables of the low-level session. Invariants: options libfuse 3 would refuse (big_writes) or
// cannot honour without fusermount3 (auto_unmount) are dropped; the ones that are per-open or
// per-reply in the low-level API (direct_io, *_timeout, max_write) become config; max_read always
// reaches the kernel and equals the config's maxRead (libfuse refuses INIT otherwise).

import type { NativeConfig } from './fuse3-abi'

export interface Fuse3Options {
  /** Mount options as fuse-native takes them, e.g. ['allow_other', 'fsname=vstor', 'max_read=1048576']. */
  options?: string[]
  /** fuse-native's request timeout: ignored (there is none). */
  timeout?: number | false
  debug?: boolean
  /** Largest write request (default 1 MiB; the kernel caps at max_pages_limit pages). */
  maxWrite?: number
  /** Largest read request (default 1 MiB); sets the max_read mount option. */
  maxRead?: number
  /** Requests the kernel keeps in flight in the background (async direct I/O counts; default 64). */
  maxBackground?: number
  congestionThreshold?: number
  /** libfuse worker threads (default 64): they queue requests for JS, and do the native mapped path's
   *  device I/O (a device holds at most a quarter of them; its other requests queue). */
  maxThreads?: number
  maxIdleThreads?: number
  /** One /dev/fuse fd per worker (default true). */
  cloneFd?: boolean
  /** FOPEN_DIRECT_IO on every open (default true): every read reaches the handler. */
  directIo?: boolean
  /** FOPEN_PARALLEL_DIRECT_WRITES on open (kernel 6.2+; default false). */
  parallelDirectWrites?: boolean
  spliceRead?: boolean
  spliceWrite?: boolean
  /** Ask for FUSE_CAP_ASYNC_DIO (default true). */
  asyncDio?: boolean
  /** Seconds the kernel may cache entries / attributes / misses (default 0). */
  entryTimeout?: number
  attrTimeout?: number
  negativeTimeout?: number
  /** unmount: how long requests in flight may take before the mount is aborted (default 30 s). */
  drainTimeoutMs?: number
  /** Requests per JS call (default 256). */
  batchSize?: number
}

const MiB = 1 << 20

export function nativeConfig(opts: Fuse3Options): { config: NativeConfig; options: string[] } {
  const config: NativeConfig = {
    entryTimeout: opts.entryTimeout ?? 0,
    attrTimeout: opts.attrTimeout ?? 0,
    negativeTimeout: opts.negativeTimeout ?? 0,
    maxWrite: opts.maxWrite ?? MiB,
    maxRead: opts.maxRead ?? MiB,
    maxBackground: opts.maxBackground ?? 64,
    congestionThreshold: opts.congestionThreshold ?? 48,
    maxThreads: opts.maxThreads ?? 64,
    maxIdleThreads: opts.maxIdleThreads ?? Math.min(opts.maxThreads ?? 64, 16),
    cloneFd: opts.cloneFd ?? true,
    directIo: opts.directIo ?? true,
    parallelDirectWrites: opts.parallelDirectWrites ?? false,
    spliceRead: opts.spliceRead ?? false,
    spliceWrite: opts.spliceWrite ?? false,
    asyncDio: opts.asyncDio ?? true,
    debug: opts.debug ?? false,
  }
  const out: string[] = []
  const num = (v: string): number => {
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) throw new Error(`fuse3: bad mount option value ${v}`)
    return n
  }
  for (const opt of (opts.options ?? []).flatMap((o) => o.split(','))) {
    const [key = '', value = ''] = opt.trim().split(/=(.*)/s)
    switch (key) {
      case '':
      case 'big_writes': // libfuse 3 always allows big writes
      case 'auto_unmount': // needs fusermount3; the agent clears dead mounts itself
        break
      case 'direct_io':
        config.directIo = true
        break
      case 'max_write':
        config.maxWrite = num(value)
        break
      case 'max_read':
        config.maxRead = num(value)
        break
      case 'entry_timeout':
        config.entryTimeout = num(value)
        break
      case 'attr_timeout':
        config.attrTimeout = num(value)
        break
      case 'negative_timeout':
        config.negativeTimeout = num(value)
        break
      default:
        if (!out.includes(opt.trim())) out.push(opt.trim())
    }
  }
  out.push(`max_read=${config.maxRead}`)
  return { config, options: out }
}
