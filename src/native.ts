// Optional native addons (native/NAME, built by bin/setup with node-gyp).
// Invariant: a missing or unloadable addon is null, never an exception, so
// every caller has a pure-Node fallback; `VSTOR_NO_NATIVE=NAME[,NAME]` (or
// `all`) hides addons, to test those fallbacks.

import path from 'node:path'

const cache = new Map<string, unknown>()

/** native/NAME/build/Release/NAME.node relative to the repo root (dist/src/native.js → ../../). */
export function addonPath(name: string): string {
  return path.resolve(__dirname, '..', '..', 'native', name, 'build', 'Release', `${name}.node`)
}

/** The addon's exports, or null when it is not built (or hidden by VSTOR_NO_NATIVE). */
export function loadAddon<T>(name: string): T | null {
  if (cache.has(name)) return cache.get(name) as T | null
  const hidden = (process.env.VSTOR_NO_NATIVE ?? '').split(',').map((s) => s.trim())
  let mod: T | null = null
  if (!hidden.includes(name) && !hidden.includes('all')) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(addonPath(name)) as T
    } catch {
      mod = null
    }
  }
  cache.set(name, mod)
  return mod
}
