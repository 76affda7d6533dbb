// The man pages cannot drift from the commands: man/vstor.1 documents exactly
// the commands oclif knows and equals a fresh rendering; every page formats
// without groff warnings.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { loadConfig, manCommands, renderMan } from '../../src/cli/man'
import { ROOT } from './run'

const MAN = path.join(ROOT, 'man')

test('man/vstor.1 lists exactly the commands of the oclif Config', async () => {
  const config = await loadConfig(ROOT)
  const page = fs.readFileSync(path.join(MAN, 'vstor.1'), 'utf8')
  const inPage = [...page.matchAll(/^\.SS "vstor (.+)"$/gm)].map((m) => (m[1] ?? '').replace(/\\-/g, '-').split(' ').join(':'))
  const inConfig = config.commands.filter((c) => !c.hidden).map((c) => c.id)
  assert.deepEqual(inPage.sort(), inConfig.sort())
  assert.ok(inPage.includes('disk:create') && inPage.includes('mount'), 'the page has the vstor commands')
})

test('regenerating man/vstor.1 gives the committed file (run `npm run man` after changing a command)', async () => {
  const config = await loadConfig(ROOT)
  assert.ok(manCommands(config).length >= 13)
  assert.equal(renderMan(config), fs.readFileSync(path.join(MAN, 'vstor.1'), 'utf8'))
})

test('every man page formats without groff warnings and has the hand-written sections', () => {
  for (const page of ['vstor.1', 'vstor-controller.8', 'vstor-mount.8', 'vstor-table.5']) {
    const file = path.join(MAN, page)
    const r = spawnSync('groff', ['-man', '-ww', '-z', file], { encoding: 'utf8' })
    assert.equal(r.status, 0, `${page}: groff failed: ${r.error?.message ?? r.stderr}`)
    assert.equal(r.stderr, '', `${page}: groff warnings`)
  }
  const main = fs.readFileSync(path.join(MAN, 'vstor.1'), 'utf8')
  for (const section of ['EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO']) assert.match(main, new RegExp(`^\\.SH ${section}$`, 'm'))
  const mount = fs.readFileSync(path.join(MAN, 'vstor-mount.8'), 'utf8')
  for (const errno of ['EIO', 'EROFS', 'ENOSPC', 'EPERM']) assert.ok(mount.includes(errno), `vstor-mount(8) mentions ${errno}`)
  const table = fs.readFileSync(path.join(MAN, 'vstor-table.5'), 'utf8')
  for (const fault of ['unmapped', 'write\\-protected', 'unallocated', 'device\\-error'])
    assert.ok(table.includes(`.B ${fault}`), `vstor-table(5) documents ${fault}`)
})
