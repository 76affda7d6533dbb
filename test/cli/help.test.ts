// Every command documents itself: --help shows its usage and its examples
// (taken from the oclif Config, so a new command is covered automatically),
// and the autocomplete plugin loads on this Node.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '../../src/cli/man'
import { ROOT, vstor } from './run'

test('--help of every vstor command shows usage, flags and its examples', async () => {
  const config = await loadConfig(ROOT)
  const own = config.commands.filter((c) => c.pluginName === config.name)
  assert.deepEqual(own.map((c) => c.id).sort(), [
    'agent:forget',
    'agent:list',
    'controller:backup',
    'controller:start',
    'controller:stop',
    'device:add',
    'device:check',
    'device:evacuate',
    'device:list',
    'device:remove',
    'disk:clone',
    'disk:create',
    'disk:delete',
    'disk:list',
    'disk:map',
    'disk:move',
    'disk:resize',
    'disk:revert',
    'disk:snapshot',
    'extent:set',
    'job:cancel',
    'job:list',
    'job:wait',
    'mount',
    'status',
    'tls:init',
    'tls:issue',
    'unmount',
  ])
  for (const cmd of own) {
    const words = cmd.id.split(':')
    assert.ok((cmd.examples ?? []).length >= 1, `${cmd.id} has examples`)
    const r = vstor([...words, '--help'])
    assert.equal(r.code, 0, `${cmd.id} --help: ${r.stderr}`)
    assert.match(r.stdout, new RegExp(`USAGE\\n  \\$ vstor ${words.join(' ')}`))
    assert.match(r.stdout, /--socket=PATH/, `${cmd.id} takes the global --socket`)
    assert.match(r.stdout, /--data-dir=DIR/, `${cmd.id} takes the global --data-dir`)
    assert.match(r.stdout, /--controller=HOST:PORT/, `${cmd.id} takes the global --controller`)
    assert.match(r.stdout, /--tls-dir=DIR/, `${cmd.id} takes the global --tls-dir`)
    assert.match(r.stdout, /EXAMPLES\n/, `${cmd.id} shows examples`)
    const first = cmd.examples?.[0]
    const text = (typeof first === 'string' ? first : (first?.command ?? '')).replace('<%= config.bin %>', 'vstor')
    assert.ok(r.stdout.includes(text), `${cmd.id} --help shows its example '${text}'`)
  }
})

test('vstor autocomplete --help works (the plugin loads)', () => {
  const r = vstor(['autocomplete', '--help'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /vstor autocomplete \[SHELL\]/)
  assert.equal(r.stderr, '')
})

test('vstor --help lists the topics and commands', () => {
  const r = vstor(['--help'])
  assert.equal(r.code, 0, r.stderr)
  for (const word of ['controller', 'device', 'disk', 'extent', 'mount', 'unmount', 'status', 'tls']) {
    assert.match(r.stdout, new RegExp(`^  ${word}\\s`, 'm'), `lists ${word}`)
  }
})
