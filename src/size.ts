// Sizes as admins write them: bytes, or a number with a binary suffix
// (K, M, G, T, P; "KiB"/"KB"/"k" all mean 1024). Results stay exact integers
// below 2^53; anything larger is refused rather than rounded.

import { VstorError } from './errors'

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 }

export const MiB = 2 ** 20

export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*$/i.exec(text)
  if (!m) {
    throw new VstorError('BAD_SIZE', `bad ${what} '${text}': give bytes or a number with K, M, G, T or P (binary units), e.g. 10G`)
  }
  const unit = UNITS[(m[2] ?? '').toUpperCase()] ?? 1
  const bytes = Number(m[1]) * unit
  if (!Number.isSafeInteger(bytes)) {
    throw new VstorError('BAD_SIZE', `bad ${what} '${text}': not a whole number of bytes below 2^53`)
  }
  return bytes
}

/**
 * 1536 -> "1.5K", 10737418240 -> "10G"; exact values print without decimals, and a value the
 * decimals would round that is a whole number of the next smaller unit prints in it ((4G - 1M) -> "4095M").
 */
export function formatSize(bytes: number): string {
  const suffixes = ['', 'K', 'M', 'G', 'T', 'P']
  let i = 0
  let v = bytes
  while (Math.abs(v) >= 1024 && i < suffixes.length - 1) {
    v /= 1024
    i++
  }
  const shown = Number(v.toFixed(Math.abs(v) < 10 ? 2 : 1))
  if (shown !== v && i > 0 && Number.isInteger(v * 1024) && Math.abs(v * 1024) < 100_000) {
    v *= 1024
    i--
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '')
  return s + (suffixes[i] ?? '')
}

/** Round up to a multiple of unit (a power of two or any positive integer). */
export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit
}

/** Durations as admins write them: "500ms", "5s", "2m", "1h"; a bare number is seconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text)
  if (!m) throw new VstorError('BAD_ARGUMENT', `bad ${what} '${text}': give e.g. 500ms, 5s, 2m`)
  const mult: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  return Math.round(Number(m[1]) * (mult[(m[2] ?? 's').toLowerCase()] ?? 1000))
}
