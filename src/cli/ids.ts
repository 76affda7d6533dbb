// Owners and modes as admins write them: `--gid kvm` or `--gid 36`,
// `--mode 0660`. Names resolve through /etc/passwd and /etc/group (the files
// nss reads for local users); anything unknown is a BAD_ARGUMENT saying so.

import fs from 'node:fs'
import { checkName } from '../controller/context'
import { VstorError } from '../errors'

/** A user or group id from a number or a name listed in `file` (/etc/passwd or /etc/group). */
export function resolveId(text: string, file: string, flag: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text)
    if (n <= 2 ** 32 - 2) return n
  } else {
    let lines: string[] = []
    try {
      lines = fs.readFileSync(file, 'utf8').split('\n')
    } catch {
      // no file: only numbers work
    }
    for (const l of lines) {
      const f = l.split(':')
      if (f[0] === text && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2])
    }
  }
  throw new VstorError('BAD_ARGUMENT', `bad ${flag} '${text}': give a number or a name listed in ${file}`)
}

/** Octal permission bits (e.g. 0660, 640); no setuid/setgid/sticky bits. */
export function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new VstorError('BAD_ARGUMENT', `bad --mode '${text}': give octal permission bits like 0600 or 0660`)
  return parseInt(text, 8)
}

/** A disk name as the controller accepts it, checked by the command itself: BAD_NAME in the user's terms, exit 1. */
export function diskName(text: string): string {
  return checkName(text, 'disk')
}
