// Globs expanded with fs, and scanLabels finding labelled files among them.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { expandGlob, expandGlobs, scanLabels, writeLabel } from '../../src/device'
import { segmentRegExp } from '../../src/device/glob'
import { makeFile, MiB, scope } from './helpers'

const label = (uuid: string, name: string) => ({ version: 1, uuid, controllerId: 'c', name, createdAt: '2026-01-01T00:00:00.000Z' })

test('glob: * ? [..] [!..] within one segment; dot files only by a literal dot; escapes', () => {
  const m = (pat: string, name: string) => segmentRegExp(pat).test(name)
  assert.ok(m('disk*', 'disk12') && m('disk*', 'disk') && !m('disk*', 'dis'))
  assert.ok(m('sd?', 'sdb') && !m('sd?', 'sdb1'))
  assert.ok(m('sd[a-c]', 'sdb') && !m('sd[a-c]', 'sdd'))
  assert.ok(m('sd[!a]', 'sdb') && !m('sd[!a]', 'sda') && m('sd[^a]', 'sdc'))
  assert.ok(m('a.b+c(d)', 'a.b+c(d)') && !m('a.b', 'axb'))
  assert.ok(m('x\\*', 'x*') && !m('x\\*', 'xy'))
  assert.ok(m('[', '[') && m('a[b', 'a[b'), 'an unclosed bracket is literal')
})

test('glob: expansion over real directories', async (t) => {
  const dir = scope(t).tempDir()
  for (const f of ['a/dev0', 'a/dev1', 'a/.hidden', 'b/dev2', 'b/other', 'c/dev9']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true })
    fs.writeFileSync(path.join(dir, f), '')
  }
  const rel = (ps: string[]) => ps.map((p) => path.relative(dir, p))
  assert.deepEqual(rel(await expandGlob(path.join(dir, '*/dev?'))), ['a/dev0', 'a/dev1', 'b/dev2', 'c/dev9'])
  assert.deepEqual(rel(await expandGlob(path.join(dir, 'a/*'))), ['a/dev0', 'a/dev1'])
  assert.deepEqual(rel(await expandGlob(path.join(dir, 'a/.*'))), ['a/.hidden'])
  assert.deepEqual(rel(await expandGlob(path.join(dir, '[ab]/dev[!0]'))), ['a/dev1', 'b/dev2'])
  assert.deepEqual(rel(await expandGlob(path.join(dir, 'nope/*'))), [])
  assert.deepEqual(rel(await expandGlob(path.join(dir, 'a/missing'))), [], 'only paths that exist')
  assert.deepEqual(rel(await expandGlob(path.join(dir, 'a/dev0'))), ['a/dev0'])
  assert.deepEqual(rel(await expandGlobs([path.join(dir, 'b/*'), path.join(dir, '*/dev2')])), ['b/dev2', 'b/other'], 'unique')
  const cwd = process.cwd()
  process.chdir(dir)
  try {
    assert.deepEqual(rel(await expandGlob('c/*')), ['c/dev9'], 'relative to the cwd')
  } finally {
    process.chdir(cwd)
  }
})

test('scanLabels: uuid → path for labelled files; skips unlabelled, damaged, directories and missing paths', async (t) => {
  const dir = scope(t).tempDir()
  const f = (name: string) => makeFile(path.join(dir, name), 2 * MiB)
  await writeLabel(f('dev-a'), label('uuid-a', 'a'))
  await writeLabel(f('dev-b'), label('uuid-b', 'b'))
  f('dev-blank')
  fs.writeFileSync(f('dev-damaged'), 'VSTORLBL\n{oops', { flag: 'r+' })
  await writeLabel(f('dev-c-copy'), label('uuid-a', 'copy'))
  fs.mkdirSync(path.join(dir, 'dev-dir'))
  fs.writeFileSync(path.join(dir, 'tiny'), 'VSTORLBL\n')
  const found = await scanLabels([path.join(dir, 'dev-*'), path.join(dir, 'missing'), path.join(dir, 'tiny')])
  assert.deepEqual(
    [...found].sort(),
    [
      ['uuid-a', path.join(dir, 'dev-a')],
      ['uuid-b', path.join(dir, 'dev-b')],
    ],
    'the first path with a uuid wins; damaged labels belong to no one',
  )
  assert.equal((await scanLabels([])).size, 0)
})
