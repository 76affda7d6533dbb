// Shape checks for everything a peer sends, so handlers get typed, checked params.
// Small hand-written combinators; each failure is a VstorError BAD_REQUEST naming the
// field ("disk.create: params.size must be a non-negative integer").
//
// Invariants: every method in CliMethods, AgentMethods, ControllerToAgentMethods and
// Notes (messages.ts) has exactly one validator here; objects reject unknown fields;
// numbers are finite, non-negative safe integers; strings are non-empty.

import { VstorError } from '../errors'
import { PROTOCOL_VERSION } from '../config'
import type { StateName } from '../table/table'
import type { AllMethods, Hello, HelloReply, Notes } from './messages'

type Check<T> = (v: unknown, at: string) => T

function bad(at: string, what: string): never {
  throw new VstorError('BAD_REQUEST', `${at} ${what}`)
}

const str: Check<string> = (v, at) => (typeof v === 'string' && v.length > 0 ? v : bad(at, 'must be a non-empty string'))
const int: Check<number> = (v, at) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(at, 'must be a non-negative integer')
const bool: Check<boolean> = (v, at) => (typeof v === 'boolean' ? v : bad(at, 'must be true or false'))

function oneOf<T extends string>(...values: T[]): Check<T> {
  return (v, at) => (values.includes(v as T) ? (v as T) : bad(at, `must be one of ${values.map((x) => `'${x}'`).join(', ')}`))
}
function arrayOf<T>(item: Check<T>): Check<T[]> {
  return (v, at) => (Array.isArray(v) ? v.map((x, i) => item(x, `${at}[${i}]`)) : bad(at, 'must be an array'))
}

const OPTIONAL = Symbol('optional')
type Optional<T> = Check<T> & { [OPTIONAL]: true }
function opt<T>(c: Check<T>): Optional<T | undefined> {
  const f = ((v: unknown, at: string) => (v === undefined ? undefined : c(v, at))) as Optional<T | undefined>
  f[OPTIONAL] = true
  return f
}

type Shape = Record<string, Check<unknown>>
type ShapeType<S extends Shape> = { [K in keyof S]: S[K] extends Check<infer T> ? T : never }
function obj<S extends Shape>(shape: S): Check<ShapeType<S>> {
  return (v, at) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(at, 'must be an object')
    const rec = v as Record<string, unknown>
    for (const key of Object.keys(rec)) if (!Object.hasOwn(shape, key)) bad(`${at}.${key}`, 'is not a known field')
    const out: Record<string, unknown> = {}
    for (const [key, check] of Object.entries(shape)) {
      if (!(OPTIONAL in check) && rec[key] === undefined) bad(`${at}.${key}`, 'is missing')
      const value = check(rec[key], `${at}.${key}`)
      if (value !== undefined) out[key] = value
    }
    return out as ShapeType<S>
  }
}
/** Extra cross-field rule on an object check. */
function refine<T>(c: Check<T>, rule: (v: T) => string | null): Check<T> {
  return (v, at) => {
    const value = c(v, at)
    const why = rule(value)
    return why === null ? value : bad(at, why)
  }
}

const stateName = oneOf<StateName>('invalid', 'no-write', 'zero', 'error')
const empty = obj({})
const agentDevice = obj({ id: int, name: str, uuid: str, hint: opt(str) })
const range = (p: { start: number; end: number; size: number }) =>
  p.start > p.end ? 'has start after end' : p.end > p.size ? 'has end past the disk size' : null

const validators: { [M in keyof AllMethods]: Check<AllMethods[M][0]> } & { [N in keyof Notes]: Check<Notes[N]> } = {
  // CLI -> controller
  status: empty,
  'controller.stop': empty,
  'device.add': obj({ path: str, name: opt(str) }),
  'device.list': empty,
  'device.remove': obj({ name: str }),
  'disk.create': obj({ name: str, size: int, devices: opt(arrayOf(str)), thin: opt(bool), zero: opt(bool) }),
  'disk.list': empty,
  'disk.delete': obj({ name: str, force: opt(bool) }),
  'disk.map': obj({ name: str }),
  'extent.set': obj({ name: str, offset: int, length: int, set: arrayOf(stateName), clear: arrayOf(stateName) }),
  'disk.resize': obj({ name: str, size: int, shrink: opt(bool) }),
  'disk.snapshot': obj({ name: str, snapshot: str }),
  'disk.clone': obj({ source: str, name: str }),
  'disk.revert': obj({ name: str, to: str }),
  'disk.move': obj({ name: str, to: str, offset: opt(int), length: opt(int) }),
  'device.evacuate': obj({ name: str, to: opt(arrayOf(str)) }),
  'device.check': obj({ name: str }),
  'controller.backup': obj({ path: str }),
  'agent.list': empty,
  'agent.forget': obj({ id: str }),
  'job.list': empty,
  'job.get': obj({ id: int }),
  'job.wait': obj({ id: int }),
  'job.cancel': obj({ id: int }),
  // agent -> controller
  fault: obj({
    disk: str,
    kind: oneOf('unmapped', 'write-protected', 'unallocated', 'device-error'),
    offset: int,
    length: int,
    generation: int,
    device: opt(int),
    errno: opt(str),
  }),
  'agent.sync': obj({ generation: int }),
  'metadata.sync': obj({}),
  'agent.bye': obj({}),
  discard: obj({ disk: str, uid: str, offset: int, length: int }),
  // controller -> agent
  'table.load': obj({
    generation: int,
    durable: int,
    devices: arrayOf(agentDevice),
    disks: arrayOf(obj({ name: str, uid: str, size: int, generation: int, bytes: int, readonly: opt(bool), sparse: opt(bool) })),
  }),
  'table.update': refine(
    obj({
      generation: int,
      disk: str,
      uid: str,
      size: int,
      start: int,
      end: int,
      devices: opt(arrayOf(agentDevice)),
      lazy: opt(bool),
      hold: opt(bool),
    }),
    range,
  ),
  'disk.add': obj({
    generation: int,
    disk: str,
    uid: str,
    size: int,
    readonly: opt(bool),
    sparse: opt(bool),
    devices: opt(arrayOf(agentDevice)),
  }),
  'disk.remove': obj({ generation: int, disk: str, uid: str }),
  'table.replace': obj({ generation: int, disk: str, uid: str, size: int }),
  // notes
  'agent.open': obj({ disks: arrayOf(str) }),
  'agent.devices': obj({ missing: arrayOf(str) }),
  progress: refine(obj({ op: str, done: int, total: int }), (p) => (p.done > p.total ? 'has done past total' : null)),
}

export function isKnownMethod(method: string): method is keyof typeof validators {
  return Object.hasOwn(validators, method)
}

/** Check a request's or note's params; missing params count as {}. Throws UNKNOWN_METHOD / BAD_REQUEST. */
export function validateParams(method: string, params: unknown): unknown {
  if (!isKnownMethod(method)) throw new VstorError('UNKNOWN_METHOD', `unknown method '${method}'`)
  return validators[method](params === undefined ? {} : params, `${method}: params`)
}

const helloShape = obj({
  protocol: int,
  role: oneOf('cli', 'agent'),
  agentId: opt(str),
  mountpoint: opt(str),
  pid: opt(int),
  generation: opt(int),
  epoch: opt(int),
  devices: opt(arrayOf(str)),
  frontend: opt(str),
  boot: opt(int),
})

function checkVersion(v: unknown, who: string): void {
  const protocol = v && typeof v === 'object' ? (v as { protocol?: unknown }).protocol : undefined
  if (protocol !== PROTOCOL_VERSION) {
    throw new VstorError(
      'PROTOCOL_VERSION',
      `${who} speaks protocol version ${String(protocol)}, this vstor speaks ${PROTOCOL_VERSION}: run the same vstor version on both sides`,
    )
  }
}

/** A client's hello (header without t/id). The version is checked first: another version may have other fields. */
export function validateHello(hello: unknown): Hello {
  checkVersion(hello, 'the client')
  return helloShape(hello, 'hello') as Hello
}

/** The controller's answer to hello. */
export function validateHelloReply(reply: unknown): HelloReply {
  checkVersion(reply, 'the controller')
  return obj({ protocol: int, controllerId: str, generation: int, epoch: opt(int), boot: opt(int) })(reply, 'hello reply')
}
