// Names checked in the CLI before anything is sent, so a typo gets the
// user's words ("bad disk name ''") rather than protocol text. The rule itself
// is the controller's (NAME_RE in src/controller/context.ts), written once.

import { checkName } from '../controller/context'

export function checkDiskName(name: string): string {
  return checkName(name, 'disk')
}

export function checkDeviceName(name: string): string {
  return checkName(name, 'device')
}
