// Certificates for TLS tests, made by the same code as `vstor tls init/issue` (real openssl):
// the cluster CA, a controller, good and bad clients. Removed with the temp dir in t.after.

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { initCa, issueCert } from '../../src/cli/tls'

export interface Pki {
  dir: string
  /** The cluster CA dir (ca.crt, ca.key, one dir per name). */
  ca: string
  /** Another cluster's CA dir. */
  other: string
  /** tls dir of the controller: CN ctl, SANs 127.0.0.1 plus the given ones. */
  ctl: string
  /** tls dir of a good client: CN hosta. */
  good: string
  /** Valid 2020-2021. */
  expired: string
  /** Valid only from ten years on. */
  future: string
  /** Trusts the cluster CA but presents a certificate of the other CA. */
  foreign: string
  /** The cluster's ca.crt only: no certificate of its own. */
  noCert: string
  /** Issue another name from the cluster CA. */
  issue(name: string, sans?: string[], from?: string): Promise<string>
}

const YEAR = 365 * 24 * 3600 * 1000

export async function makePki(t: TestContext, opts: { ctlSans?: string[] } = {}): Promise<Pki> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vstor-pki-'))
  t.after(() => fs.rm(dir, { recursive: true, force: true }))
  const ca = path.join(dir, 'ca')
  const other = path.join(dir, 'other')
  await initCa(ca)
  await initCa(other)
  const issue = async (name: string, sans: string[] = [], from = ca): Promise<string> => (await issueCert(from, name, { sans })).dir
  const ctl = await issue('ctl', ['127.0.0.1', ...(opts.ctlSans ?? [])])
  const good = await issue('hosta')
  const expired = (await issueCert(ca, 'old', { validity: { notBefore: new Date('2020-01-01Z'), notAfter: new Date('2021-01-01Z') } })).dir
  const now = Date.now()
  const future = (await issueCert(ca, 'early', { validity: { notBefore: new Date(now + 10 * YEAR), notAfter: new Date(now + 11 * YEAR) } }))
    .dir
  const stranger = await issue('stranger', [], other)
  const foreign = path.join(dir, 'foreign')
  await fs.mkdir(foreign, { mode: 0o700 })
  await fs.copyFile(path.join(ca, 'ca.crt'), path.join(foreign, 'ca.crt'))
  for (const f of ['tls.crt', 'tls.key']) await fs.copyFile(path.join(stranger, f), path.join(foreign, f))
  const noCert = path.join(dir, 'nocert')
  await fs.mkdir(noCert, { mode: 0o700 })
  await fs.copyFile(path.join(ca, 'ca.crt'), path.join(noCert, 'ca.crt'))
  return { dir, ca, other, ctl, good, expired, future, foreign, noCert, issue }
}
