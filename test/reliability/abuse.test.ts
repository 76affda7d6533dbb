// Issue 8: the controller under abuse. 10k malformed frames (each on its own
// connection: garbage, bad headers, requests before hello, bad hellos, agent
// hellos that leave at once, huge or short lengths, half frames), and
// clients that connect and never say hello.
//
// Invariants checked: the controller stays up and answers; its database
// dump is what it was; its RSS stays within 20 MB of where it stood after a
// warm-up; no agent record is left (`vstor agent list` is empty); the log
// grows by far fewer lines than there were bad connections (repeated lines
// are rate-limited); a client without a hello is dropped after
// --hello-timeout.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import { PROTOCOL_VERSION } from '../../src/config'
import { MiB, sh, vstorInstance, waitFor, type Instance } from '../helpers/instance'
import { frame } from '../helpers/rawsocket'
import { client, type Client } from './client'
import { rng } from './writer'

const hello = (extra: object = {}) => frame({ t: 'hello', id: 1, protocol: PROTOCOL_VERSION, role: 'cli', ...extra })

/** The i-th malformed exchange: what one connection sends before it half-closes. */
function malformed(i: number, next: () => number): Buffer[] {
  const noise = Buffer.from(Array.from({ length: 16 + (i % 64) }, () => Math.floor(next() * 256)))
  const prefix = (body: number, head: number) => {
    const b = Buffer.alloc(8)
    b.writeUInt32BE(body, 0)
    b.writeUInt32BE(head, 4)
    return b
  }
  switch (i % 11) {
    case 0:
      return [noise]
    case 1:
      return [frame(`{not json ${i}`)]
    case 2:
      return [frame({ t: 'req', id: i, method: 'status', params: {} })]
    case 3:
      return [frame({ t: 'hello', id: 1, protocol: 999, role: 'cli' })]
    case 4:
      return [hello({ bogus: i })]
    case 5:
      // an agent that says hello and leaves before it takes its table: a failed hello
      return [hello({ role: 'agent', agentId: `bogus-${i}`, mountpoint: `/nowhere/${i}`, pid: 1, generation: 0 })]
    case 6:
      return [prefix(0xffffffff, 10)]
    case 7:
      return [Buffer.concat([prefix(4, 100), Buffer.from('{}{}')])]
    case 8:
      return [hello(), frame({ t: 'req', id: 2, method: 'disk.create', params: { name: '', size: -1 } }), frame({ t: 'req', id: 3 })]
    case 9:
      return [prefix(100, 10), Buffer.from('{"t":"hel')]
    default:
      return [hello(), frame({ t: 'what', id: 9 }), noise]
  }
}

/** Connect, send, half-close, and wait until the controller closed its side too. */
function exchange(socket: string, chunks: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(socket)
    const timer = setTimeout(() => s.destroy(), 20_000)
    s.on('connect', () => {
      for (const c of chunks) s.write(c)
      s.end()
    })
    s.on('data', () => {})
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

async function blast(v: Instance, from: number, count: number, seed: number): Promise<void> {
  const next = rng(seed)
  let i = from
  const worker = async (): Promise<void> => {
    while (i < from + count) await exchange(v.socket, malformed(i++, next))
  }
  await Promise.all(Array.from({ length: 32 }, worker))
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1]) * 1024
}
const logLines = (v: Instance): number => fs.readFileSync(path.join(v.dataDir, 'controller.log'), 'utf8').split('\n').length

async function dump(v: Instance, c: Client, name: string): Promise<string> {
  const copy = path.join(v.dir, name)
  await c.call('controller.backup', { path: copy })
  const r = await sh('sqlite3', ['-readonly', copy, '.dump'])
  assert.equal(r.code, 0, r.stderr)
  return r.stdout
}

test('10k malformed frames: the controller stays up, its database and agent list unchanged, RSS bounded, log rate-limited', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  await v.startController(['--hello-timeout', '2s'])
  await v.addDevice(24 * MiB, 'd0')
  await v.run(['disk', 'create', 'keep', '--size', '4M'])
  const c = client(v)
  const pid = (await c.call('status', {})).controller.pid

  await blast(v, 0, 20_000, 1) // warm-up: code paths loaded, V8's heap (young generation) grown to its working size
  const before = { rss: rssBytes(pid), dump: await dump(v, c, 'before.db'), lines: logLines(v) }
  await blast(v, 20_000, 10_000, 2)

  assert.equal((await c.call('status', {})).controller.pid, pid, 'the controller answers, same process')
  const cli = await v.run(['status'])
  assert.match(cli.stdout, /controller/)
  assert.deepEqual((await v.run(['agent', 'list'], { json: true })).json, [], 'agent records left by failed hellos')
  assert.equal(await dump(v, c, 'after.db'), before.dump, 'the database changed')
  const grown = rssBytes(pid) - before.rss
  t.diagnostic(`RSS ${Math.round(before.rss / MiB)} MiB after warm-up, ${grown >= 0 ? '+' : ''}${(grown / MiB).toFixed(1)} MiB after 10k`)
  assert.ok(grown < 20 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`)
  const lines = logLines(v) - before.lines
  t.diagnostic(`controller.log grew by ${lines} lines for 10k bad connections`)
  assert.ok(lines < 2_000, `the log grew by ${lines} lines`)
  assert.match(fs.readFileSync(path.join(v.dataDir, 'controller.log'), 'utf8'), /… repeated \d+ more times?: /)
})

test('a client that never completes its hello is dropped after --hello-timeout; others are served meanwhile', async (t) => {
  const v = await vstorInstance(t, { prefix: 'vstor-rel-' })
  await v.startController(['--hello-timeout', '1s'])
  const open = (chunks: Buffer[]) => {
    const s = net.connect(v.socket)
    let closed = false
    s.on('connect', () => chunks.forEach((b) => s.write(b)))
    s.on('error', () => {})
    s.on('close', () => (closed = true))
    t.after(() => void s.destroy())
    return { closed: () => closed }
  }
  const silent = open([])
  const half = open([frame({ t: 'hello', id: 1, protocol: PROTOCOL_VERSION, role: 'cli' }).subarray(0, 12)])
  await v.run(['status']) // served while those two wait
  await waitFor('the silent client dropped', silent.closed, 10_000)
  await waitFor('the half-hello client dropped', half.closed, 10_000)
  assert.match(fs.readFileSync(path.join(v.dataDir, 'controller.log'), 'utf8'), /no hello within 1000 ms/)
})
