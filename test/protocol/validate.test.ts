import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PROTOCOL_VERSION } from '../../src/config'
import { VstorError } from '../../src/errors'
import { validateHello, validateHelloReply, validateParams } from '../../src/protocol/validate'

const fails = (c: string, field: string) => (e: unknown) => e instanceof VstorError && e.code === c && e.message.includes(field)

const dev = { id: 3, name: 'd0', uuid: 'b0c4-…', hint: '/tmp/d0.img' }
const good: Record<string, unknown> = {
  status: {},
  'controller.stop': {},
  'device.add': { path: '/dev/loop0', name: 'fast' },
  'device.list': {},
  'device.remove': { name: 'fast' },
  'disk.create': { name: 'vm1', size: 2 ** 44, devices: ['fast'], thin: false, zero: true },
  'disk.list': {},
  'disk.delete': { name: 'vm1', force: false },
  'disk.map': { name: 'vm1' },
  'extent.set': { name: 'vm1', offset: 0, length: 2 ** 20, set: ['no-write', 'zero'], clear: ['invalid', 'error'] },
  'disk.resize': { name: 'vm1', size: 2 ** 45, shrink: true },
  'disk.move': { name: 'vm1', to: 'fast', offset: 0, length: 2 ** 20 },
  'device.evacuate': { name: 'old', to: ['fast'] },
  'device.check': { name: 'old' },
  'controller.backup': { path: '/backup/v.db' },
  'agent.list': {},
  'agent.forget': { id: 'host1:/mnt' },
  'job.list': {},
  'job.get': { id: 3 },
  'job.wait': { id: 3 },
  'job.cancel': { id: 3 },
  fault: { disk: 'vm1', kind: 'device-error', offset: 4096, length: 512, generation: 9, device: 3, errno: 'EIO' },
  'agent.sync': { generation: 0 },
  'metadata.sync': {},
  'agent.bye': {},
  'table.load': { generation: 4, durable: 3, devices: [dev], disks: [{ name: 'vm1', uid: 'u1', size: 2 ** 30, generation: 4, bytes: 21 }] },
  'table.update': { generation: 5, disk: 'vm1', uid: 'u1', size: 2 ** 30, start: 0, end: 2 ** 20, devices: [dev], lazy: true },
  'disk.add': { generation: 6, disk: 'vm1', uid: 'u1', size: 2 ** 30, readonly: true },
  'disk.remove': { generation: 7, disk: 'vm1', uid: 'u1' },
  'table.replace': { generation: 8, disk: 'vm1', uid: 'u1', size: 2 ** 44 },
  'agent.open': { disks: ['vm1'] },
  'agent.devices': { missing: ['b0c4-…'] },
  progress: { op: 'zero', done: 1, total: 2 },
}

test('every method accepts well-formed params and returns them', () => {
  for (const [method, params] of Object.entries(good)) assert.deepEqual(validateParams(method, params), params, method)
})

test('missing params count as {} for methods without params', () => {
  assert.deepEqual(validateParams('status', undefined), {})
  assert.throws(() => validateParams('disk.map', undefined), fails('BAD_REQUEST', 'params.name is missing'))
})

test('an unknown method is UNKNOWN_METHOD', () => {
  assert.throws(() => validateParams('disk.explode', {}), fails('UNKNOWN_METHOD', 'disk.explode'))
  assert.throws(() => validateParams('__proto__', {}), fails('UNKNOWN_METHOD', '__proto__'))
  assert.throws(() => validateParams('toString', {}), fails('UNKNOWN_METHOD', 'toString'))
})

test('bad params are BAD_REQUEST naming the field', () => {
  const cases: [string, unknown, string][] = [
    ['status', { extra: 1 }, 'params.extra is not a known field'],
    ['status', [], 'params must be an object'],
    ['status', null, 'params must be an object'],
    ['device.add', { path: '' }, 'params.path must be a non-empty string'],
    ['device.add', { path: '/x', name: 5 }, 'params.name'],
    ['disk.create', { name: 'a', size: -1 }, 'params.size must be a non-negative integer'],
    ['disk.create', { name: 'a', size: 1.5 }, 'params.size'],
    ['disk.create', { name: 'a', size: 2 ** 53 }, 'params.size'],
    ['disk.create', { name: 'a', size: '10G' }, 'params.size'],
    ['disk.create', { name: 'a', size: 1, devices: ['x', 2] }, 'params.devices[1]'],
    ['disk.create', { name: 'a', size: 1, thin: 'yes' }, 'params.thin must be true or false'],
    ['extent.set', { name: 'a', offset: 0, length: 1, set: ['bogus'], clear: [] }, 'params.set[0] must be one of'],
    ['extent.set', { name: 'a', offset: 0, length: 1, set: [] }, 'params.clear is missing'],
    ['fault', { ...(good.fault as object), kind: 'meh' }, 'params.kind'],
    ['table.load', { generation: 1, durable: 1, devices: [{ id: 1, name: 'x' }], disks: [] }, 'params.devices[0].uuid is missing'],
    ['disk.remove', { generation: 1, disk: 'vm1' }, 'params.uid is missing'],
    ['job.wait', { id: -1 }, 'params.id must be a non-negative integer'],
    ['table.update', { ...(good['table.update'] as object), start: 9, end: 3 }, 'start after end'],
    ['table.update', { ...(good['table.update'] as object), end: 2 ** 31 }, 'end past the disk size'],
    ['agent.open', { disks: 'vm1' }, 'params.disks must be an array'],
  ]
  for (const [method, params, field] of cases)
    assert.throws(() => validateParams(method, params), fails('BAD_REQUEST', field), `${method} ${field}`)
})

test('hello: shape and protocol version', () => {
  const h = { protocol: PROTOCOL_VERSION, role: 'agent', agentId: 'a1', mountpoint: '/mnt/v', pid: 42, generation: 3 }
  assert.deepEqual(validateHello(h), h)
  assert.throws(() => validateHello({ ...h, protocol: PROTOCOL_VERSION + 1 }), fails('PROTOCOL_VERSION', `${PROTOCOL_VERSION + 1}`))
  assert.throws(() => validateHello({ role: 'cli' }), fails('PROTOCOL_VERSION', 'undefined'))
  assert.throws(() => validateHello({ protocol: PROTOCOL_VERSION, role: 'root' }), fails('BAD_REQUEST', 'hello.role'))
  assert.throws(() => validateHello({ protocol: PROTOCOL_VERSION, role: 'cli', pid: -1 }), fails('BAD_REQUEST', 'hello.pid'))
  assert.deepEqual(validateHelloReply({ protocol: PROTOCOL_VERSION, controllerId: 'c', generation: 0 }), {
    protocol: PROTOCOL_VERSION,
    controllerId: 'c',
    generation: 0,
  })
  assert.throws(() => validateHelloReply({ protocol: 99, controllerId: 'c', generation: 0 }), fails('PROTOCOL_VERSION', '99'))
})
