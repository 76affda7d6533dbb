// Several "hosts" for one end-to-end test: the controller in namespace A listening with TLS on
// one address, agents in namespaces joined to A by their own veth (routed to that address),
// each with a certificate of its own, all driven through the real CLI (bin/vstor).
//
// Invariants:
//   * the controller listens on one 198.18.x.y address (never a wildcard); every other host
//     reaches it through its own veth with a /32 route, so a link can be cut per host;
//   * everything is torn down by vstorInstance (agents, controller, mounts under its dir,
//     loop devices) and then by the NetLab (namespaces, nbdkit/nbdfuse, private mounts):
//     vstorInstance registers its t.after first, so it runs first;
//   * an agent's pid and log files live in the instance's agents dir (its --socket's dir),
//     so `vstor unmount MNT` finds them from any namespace.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import type { TestContext } from 'node:test'
import type { AgentInfo } from '../../src/protocol/messages'
import { BIN, ROOT } from '../cli/run'
import { vstorInstance, type Instance } from './instance'
import { host, type Host } from './nbd'
import { netLab, type NetLab, type Veth } from './netns'
import { makePki, type Pki } from './pki'
import type { ShResult } from './proc'

export interface AgentHost extends Host {
  /** Certificate name (CN): the agent's id is `${name}:${mountpoint}`. */
  name: string
  tlsDir: string
  /** The veth from A to this host (link.b is this host's end). */
  link: Veth
}

export interface Cluster {
  v: Instance
  lab: NetLab
  pki: Pki
  ctl: Host
  /** HOST:PORT the controller listens on. */
  controller: string
  agents: AgentHost[]
  /** bin/vstor in a host, with the instance's --socket/--data-dir; asserts exit 0 unless expectFail. */
  vstorIn(h: Host, args: string[], opts?: { expectFail?: boolean; timeoutMs?: number }): Promise<ShResult>
  /** `vstor mount MNT --controller … --tls-dir …` in an agent host (MNT created). */
  mount(h: AgentHost, mnt: string, extra?: string[]): Promise<void>
  /** The controller's record of the agent serving mnt. */
  agentAt(mnt: string): Promise<AgentInfo | undefined>
  agentLog(mnt: string): string
}

const PORT = 7420

/** null when the test was skipped (no root, outside CI). */
export async function cluster(
  t: TestContext,
  opts: { agents: number; privateController?: boolean; controllerArgs?: string[] },
): Promise<Cluster | null> {
  const v = await vstorInstance(t)
  const lab = await netLab(t)
  if (!lab) return null
  const a = await lab.ns()
  const links: Veth[] = []
  for (let i = 0; i < opts.agents; i++) links.push(await lab.veth(a, await lab.ns()))
  const ip = links[0]!.a.ip
  for (const l of links.slice(1)) await lab.runOk(l.b.ns, 'ip', ['route', 'add', `${ip}/32`, 'via', l.a.ip])
  const pki = await makePki(t, { ctlSans: [ip] })
  const ctl = await host(lab, a, { privateMounts: opts.privateController ?? false })
  const agents: AgentHost[] = []
  for (const [i, l] of links.entries()) {
    const name = `host${String.fromCharCode(98 + i)}` // hostb, hostc…
    agents.push({ ...(await host(lab, l.b.ns)), name, tlsDir: await pki.issue(name), link: l })
  }
  const controller = `${ip}:${PORT}`
  const vstorIn: Cluster['vstorIn'] = async (h, args, o = {}) => {
    const r = await h.run(process.execPath, [BIN, ...args, '--socket', v.socket, '--data-dir', v.dataDir], {
      cwd: ROOT,
      timeoutMs: o.timeoutMs ?? 120_000,
    })
    if (o.expectFail) assert.notEqual(r.code, 0, `vstor ${args.join(' ')} should have failed: ${r.stdout}`)
    else assert.equal(r.code, 0, `vstor ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
    return r
  }
  await vstorIn(ctl, ['controller', 'start', '--listen', controller, '--tls-dir', pki.ctl, ...(opts.controllerArgs ?? [])])
  const logOf = (mnt: string): string => path.join(v.agentsDir, `${encodeURIComponent(path.resolve(mnt))}.log`)
  return {
    v,
    lab,
    pki,
    ctl,
    controller,
    agents,
    vstorIn,
    async mount(h, mnt, extra = []) {
      fs.mkdirSync(mnt, { recursive: true })
      await vstorIn(h, ['mount', mnt, '--controller', controller, '--tls-dir', h.tlsDir, ...extra])
    },
    agentAt: async (mnt) => (await v.status()).agents.find((x) => x.mountpoint === mnt),
    agentLog: (mnt) => (fs.existsSync(logOf(mnt)) ? fs.readFileSync(logOf(mnt), 'utf8') : ''),
  }
}
