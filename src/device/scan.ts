// Find devices by label: read the label of every regular file and block device matching some
// globs. Invariants: never writes; never throws for a path it cannot stat, open or read (it is
// skipped); a label with an unreadable body is no one's; when two paths carry the same uuid (a
// /dev/disk/by-id link and its /dev node, or a copied file), the first in glob order wins.

import fs from 'node:fs/promises'
import { expandGlobs } from './glob'
import { readLabel, UNREADABLE } from './label'
import { kindOf } from './stat'

/** uuid → path for the labelled devices among the paths matching globs. */
export async function scanLabels(globs: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  for (const p of await expandGlobs(globs)) {
    try {
      if (!kindOf(await fs.stat(p))) continue
      const label = await readLabel(p)
      if (label && label.uuid !== UNREADABLE && !found.has(label.uuid)) found.set(label.uuid, p)
    } catch {
      // unreadable: skip
    }
  }
  return found
}
