// What every handler gets: the model, the agents and the options.

import { VstorError } from '../errors'
import type { Agents } from './agents'
import type { State } from './state'

export interface Ctx {
  state: State
  agents: Agents
  socket: string
  dataDir: string
  database: string
  startedAt: Date
  noSpaceTimeoutMs: number
  refreshIntervalMs: number
  stop: () => void
}

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new VstorError(
      'BAD_NAME',
      `bad ${what} name '${String(name)}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return name
}
