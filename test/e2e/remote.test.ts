// An agent on "another host": the controller in network namespace A serves TLS on its
// veth address; `vstor mount --controller A:PORT --tls-dir DIR` runs in namespace B. A
// first write into a thin disk faults over TLS and allocates; mapped reads go on with the
// link down. vstorInstance's teardown (registered first, so run first) unmounts and stops the
// controller; the lab then removes the namespaces.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import test from 'node:test'
import { BIN, ROOT } from '../cli/run'
import { MiB, qemuIoOk, vstorInstance } from '../helpers/instance'
import { netLab, type Ns } from '../helpers/netns'
import { makePki } from '../helpers/pki'

test('vstor mount in namespace B with --controller over TLS serves a thin disk of the controller in namespace A', async (t) => {
  const v = await vstorInstance(t)
  const lab = await netLab(t)
  if (!lab) return
  const a = await lab.ns()
  const b = await lab.ns()
  const link = await lab.veth(a, b)
  const pki = await makePki(t, { ctlSans: [link.a.ip] })
  const vstorIn = async (ns: Ns, args: string[]): Promise<string> => {
    const r = await lab.run(ns, process.execPath, [BIN, ...args, '--socket', v.socket, '--data-dir', v.dataDir], {
      cwd: ROOT,
      timeoutMs: 60_000,
    })
    assert.equal(r.code, 0, `vstor ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const controller = `${link.a.ip}:7420`
  await vstorIn(a, ['controller', 'start', '--listen', controller, '--tls-dir', pki.ctl])
  await v.addDevice(64 * MiB, 'd0')
  await v.run(['disk', 'create', 'vm', '--size', '16M', '--thin'])

  await vstorIn(b, ['mount', v.mnt, '--controller', controller, '--tls-dir', pki.good, '--agent-id', 'hostb'])
  const agents = (await v.status()).agents
  // over TLS the certificate names the agent: its cert says 'hosta', so it cannot call itself 'hostb'
  assert.deepEqual(
    agents.map((x) => [x.id, x.connected]),
    [[`hosta:${v.mnt}`, true]],
  )
  const log = fs.readFileSync(path.join(v.dataDir, 'controller.log'), 'utf8')
  assert.match(log, new RegExp(`tls: accepted 'hosta' from ${link.b.ip.replace(/\./g, '\\.')}:\\d+`))

  // the first write into a thin disk is a fault: answered over TLS
  await qemuIoOk(v.image('vm'), ['write -P 0x5a 0 1M', 'read -P 0x5a 0 1M'])
  assert.equal((await v.diskList()).find((d) => d.name === 'vm')?.allocated, MiB)
  const agentLog = fs.readdirSync(v.agentsDir).find((f) => f.endsWith('.log'))
  assert.match(
    fs.readFileSync(path.join(v.agentsDir, agentLog ?? ''), 'utf8'),
    /connected to the controller at 198\.18\.\d+\.1:7420 \(TLS\)/,
  )

  // mapped I/O does not need the controller
  await lab.setLink(link.b, 'down')
  await qemuIoOk(v.image('vm'), ['read -P 0x5a 0 1M', 'write -P 0x33 4096 4096', 'read -P 0x33 4096 4096'])
  await lab.setLink(link.b, 'up')
})
