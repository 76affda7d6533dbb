// SQL text with its parameters written in as literals, so a transaction's writes can go to SQLite's
// thread as one script (Db.queue): one trip instead of two per statement.
//
// Invariant: the text means exactly what the statement with bound parameters means. Numbers are
// finite and written exactly (integers as digits, never in exponent form up to 2^53); strings are
// quoted with every quote doubled; a NUL byte, which would end the text early, is refused.

import { VstorError } from '../errors'
import type { SqlParam } from './db'

export function literal(v: SqlParam): string {
  if (v === null) return 'NULL'
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new VstorError('INTERNAL', `SQL parameter ${v} is not a finite number`)
    return Number.isInteger(v) ? BigInt(v).toString() : String(v)
  }
  if (v.includes('\0')) throw new VstorError('INTERNAL', 'SQL parameter holds a NUL byte')
  return `'${v.replace(/'/g, "''")}'`
}

/** `sql` with each `?` outside quotes replaced by the next parameter, as a literal. */
export function inline(sql: string, params: SqlParam[]): string {
  let out = ''
  let next = 0
  let quote: string | null = null
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = null // a doubled quote closes and reopens: same result
      out += ch
    } else if (ch === "'" || ch === '"') {
      quote = ch
      out += ch
    } else if (ch === '?') {
      if (next >= params.length) throw new VstorError('INTERNAL', `SQL has more '?' than its ${params.length} parameters: ${sql}`)
      out += literal(params[next++]!)
    } else out += ch
  }
  if (next !== params.length) throw new VstorError('INTERNAL', `SQL has ${next} '?' for ${params.length} parameters: ${sql}`)
  return out
}
