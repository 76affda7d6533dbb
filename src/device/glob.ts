// Shell-style path globs expanded with fs (no dependency): `*`, `?` and `[...]` (`[!...]` or
// `[^...]` negate) match within one path segment; a leading '.' in a name is matched only by a
// literal '.'; `\` escapes. Invariants: results are absolute, unique, in pattern order then
// sorted per directory; only paths that exist (lstat) when expanded are returned; unreadable
// directories contribute nothing (never an error).

import fs from 'node:fs/promises'
import path from 'node:path'

const MAGIC = /[*?[]/

export function hasMagic(segment: string): boolean {
  return MAGIC.test(segment.replace(/\\./g, ''))
}

/** A RegExp for one path segment. */
export function segmentRegExp(seg: string): RegExp {
  let re = ''
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!
    if (c === '\\' && i + 1 < seg.length) re += escape(seg[++i]!)
    else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else if (c === '[') {
      const close = seg.indexOf(']', i + 2)
      if (close < 0) {
        re += '\\['
        continue
      }
      let body = seg.slice(i + 1, close)
      const neg = body[0] === '!' || body[0] === '^'
      if (neg) body = body.slice(1)
      re += `[${neg ? '^' : ''}${body.replace(/[\\\]^]/g, (m) => '\\' + m)}]`
      i = close
    } else re += escape(c)
  }
  return new RegExp(`^${re}$`)
}

function escape(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? '\\' + c : c
}

function unescape(seg: string): string {
  return seg.replace(/\\(.)/g, '$1')
}

/** Paths matching one glob (relative globs resolve against the cwd). */
export async function expandGlob(pattern: string): Promise<string[]> {
  const abs = path.resolve(pattern)
  let bases = ['/']
  for (const seg of abs.split('/').filter((s) => s !== '')) {
    const next: string[] = []
    if (!hasMagic(seg)) {
      for (const b of bases) next.push(path.join(b, unescape(seg)))
    } else {
      const re = segmentRegExp(seg)
      const dots = seg.startsWith('.')
      for (const b of bases) {
        let names: string[]
        try {
          names = await fs.readdir(b)
        } catch {
          continue
        }
        for (const n of names.sort()) if ((dots || !n.startsWith('.')) && re.test(n)) next.push(path.join(b, n))
      }
    }
    bases = next
  }
  const exists = await Promise.all(
    bases.map((p) =>
      fs.lstat(p).then(
        () => true,
        () => false,
      ),
    ),
  )
  return bases.filter((_, i) => exists[i])
}

/** Every path matching any of the globs, unique, in glob order. */
export async function expandGlobs(patterns: string[]): Promise<string[]> {
  const seen = new Set<string>()
  for (const p of patterns) for (const m of await expandGlob(p)) seen.add(m)
  return [...seen]
}
