// What the agent's log says its native mapped path did (the agent logs its counters when it stops).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import type { Instance } from '../helpers/instance'

interface NativeCounts {
  reads: number
  writes: number
  toJs: number
  queued: number
  errors: number
}

/** Unmount and read what the agent's log says the native path did. */
export async function nativeCounts(v: Instance): Promise<NativeCounts> {
  await v.unmount()
  const logs = fs.readdirSync(v.agentsDir).filter((f) => f.endsWith('.log'))
  const text = logs.map((f) => fs.readFileSync(path.join(v.agentsDir, f), 'utf8')).join('\n')
  const all = [...text.matchAll(/native mapped path: (\d+) reads, (\d+) writes, (\d+) to JS, (\d+) queued, (\d+) errors/g)]
  const m = all.at(-1)
  assert.ok(m, `no native mapped path line in the agent log:\n${text}`)
  const [reads, writes, toJs, queued, errors] = m.slice(1).map(Number) as [number, number, number, number, number]
  return { reads, writes, toJs, queued, errors }
}
