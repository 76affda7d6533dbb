// Making a cluster CA and host certificates with the system openssl (execFile, no shell),
// for `vstor tls init` and `vstor tls issue`.
//
// Layout: CA_DIR/ca.crt + CA_DIR/ca.key; CA_DIR/NAME/{ca.crt, tls.crt, tls.key} per issued
// name: a self-contained tls dir to copy to that host (--tls-dir CA_DIR/NAME).
//
// Invariants:
//   * files are mode 0600, directories 0700; keys are written only inside a fresh 0700
//     temp dir under CA_DIR and renamed into place, so no key is ever readable by others
//     and a failed run leaves nothing half-made;
//   * an existing CA is never overwritten; an existing NAME only with force;
//   * a certificate's CN is its NAME; it is good for both TLS server and client use
//     (one tls dir serves the controller, an agent or the CLI on that host).

import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { VstorError } from '../errors'
import { isHostName } from '../protocol/address'
import { CA_CERT, CA_KEY, TLS_CERT, TLS_KEY, parseCert, summary, type CertSummary } from '../protocol/tlsfiles'

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
export const DEFAULT_CA_DAYS = 3650
export const DEFAULT_DAYS = 825

export interface InitResult {
  dir: string
  files: string[]
  ca: CertSummary
}
export interface IssueResult {
  name: string
  dir: string
  files: string[]
  cert: CertSummary
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 60_000, env: { ...process.env, OPENSSL_CONF: '/dev/null' } }, (err, _stdout, stderr) => {
      if (!err) return resolve()
      const e = err as NodeJS.ErrnoException
      if (e.code === 'ENOENT')
        return reject(new VstorError('OPENSSL_FAILED', 'the openssl command is not installed: apt-get install openssl'))
      const last = String(stderr).trim().split('\n').slice(-3).join(' / ')
      reject(new VstorError('OPENSSL_FAILED', `openssl ${args[0]} failed: ${last || e.message}`))
    })
  })
}

const exists = (p: string): Promise<boolean> =>
  fs.lstat(p).then(
    () => true,
    () => false,
  )

/** A private scratch dir under dir (same file system: renames are atomic), removed by the caller. */
async function scratch(dir: string, what: string): Promise<string> {
  const tmp = await fs.mkdtemp(path.join(dir, `.${what}-`))
  await fs.chmod(tmp, 0o700)
  return tmp
}

const genKey = (file: string, cwd: string): Promise<void> =>
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], cwd)

function checkDays(days: number, flag = '--days'): number {
  if (!Number.isSafeInteger(days) || days < 1 || days > 36500) {
    throw new VstorError('BAD_ARGUMENT', `bad ${flag} ${days}: a whole number of days from 1 to 36500`)
  }
  return days
}

/** `vstor tls init DIR`: a new cluster CA in DIR (created 0700). Refuses an existing CA. */
export async function initCa(dirArg: string, opts: { days?: number } = {}): Promise<InitResult> {
  const dir = path.resolve(dirArg)
  const days = checkDays(opts.days ?? DEFAULT_CA_DAYS)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  if (!(await fs.stat(dir)).isDirectory()) throw new VstorError('BAD_ARGUMENT', `${dir} is not a directory`)
  for (const f of [CA_CERT, CA_KEY]) {
    if (await exists(path.join(dir, f))) {
      throw new VstorError(
        'EXISTS',
        `${dir} holds a cluster CA already (${f}): issue certificates from it with \`vstor tls issue ${dir} NAME\`, or choose another directory`,
      )
    }
  }
  await fs.chmod(dir, 0o700)
  const tmp = await scratch(dir, 'init')
  try {
    const id = crypto.randomBytes(4).toString('hex')
    await genKey(CA_KEY, tmp)
    await openssl(
      ['req', '-x509', '-new', '-key', CA_KEY, '-out', CA_CERT, '-days', String(days), '-sha256', '-subj', `/CN=vstor cluster CA ${id}`]
        .concat(['-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
        .concat(['-addext', 'subjectKeyIdentifier=hash']),
      tmp,
    )
    for (const f of [CA_KEY, CA_CERT]) await fs.chmod(path.join(tmp, f), 0o600)
    // the key last: a CA dir with ca.key has its ca.crt
    await fs.rename(path.join(tmp, CA_CERT), path.join(dir, CA_CERT))
    await fs.rename(path.join(tmp, CA_KEY), path.join(dir, CA_KEY))
  } finally {
    await fs.rm(tmp, { recursive: true, force: true })
  }
  const ca = summary(parseCert(await fs.readFile(path.join(dir, CA_CERT)), path.join(dir, CA_CERT)))
  return { dir, files: [path.join(dir, CA_CERT), path.join(dir, CA_KEY)], ca }
}

/** One --san value as an openssl subjectAltName entry. */
export function sanEntry(value: string): string {
  const v = value.trim()
  if (net.isIP(v)) return `IP:${v}`
  if (isHostName(v) || (v.startsWith('*.') && isHostName(v.slice(2)))) return `DNS:${v.toLowerCase()}`
  throw new VstorError('BAD_ARGUMENT', `bad --san '${value}': give an IP address or a DNS name (e.g. 198.18.0.1 or ctl.example)`)
}

/** openssl time for -startdate/-enddate. */
const asn1Time = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z')

/**
 * `vstor tls issue DIR NAME`: DIR/NAME/{ca.crt,tls.crt,tls.key} with CN=NAME and SANs: NAME (when it
 * is a host name or IP) plus sans. `validity` sets exact dates instead of days (tests: expired certificates).
 */
export async function issueCert(
  dirArg: string,
  name: string,
  opts: { sans?: string[]; days?: number; force?: boolean; validity?: { notBefore: Date; notAfter: Date } } = {},
): Promise<IssueResult> {
  const dir = path.resolve(dirArg)
  if (!NAME_RE.test(name)) {
    throw new VstorError('BAD_NAME', `bad name '${name}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
  for (const f of [CA_CERT, CA_KEY]) {
    if (!(await exists(path.join(dir, f)))) {
      throw new VstorError('NOT_FOUND', `no cluster CA in ${dir} (${f} is missing): create one with \`vstor tls init ${dir}\``)
    }
  }
  const sans = [...new Set([...(net.isIP(name) || isHostName(name) ? [name] : []), ...(opts.sans ?? [])].map(sanEntry))]
  const dates = opts.validity
    ? ['-startdate', asn1Time(opts.validity.notBefore), '-enddate', asn1Time(opts.validity.notAfter)]
    : ['-days', String(checkDays(opts.days ?? DEFAULT_DAYS))]
  const target = path.join(dir, name)
  const old = await fs.lstat(target).catch(() => null)
  if (old && !old.isDirectory()) throw new VstorError('BAD_ARGUMENT', `${target} exists and is not a directory: choose another name`)
  if (old && !opts.force) {
    throw new VstorError(
      'EXISTS',
      `${target} exists already: pass --force to replace its certificate (the old one stays valid until it expires)`,
    )
  }
  const tmp = await scratch(dir, `issue-${name}`)
  try {
    const out = path.join(tmp, 'out')
    await fs.mkdir(out, { mode: 0o700 })
    await genKey(path.join('out', TLS_KEY), tmp)
    await openssl(['req', '-new', '-key', path.join('out', TLS_KEY), '-subj', `/CN=${name}`, '-out', 'req.csr'], tmp)
    await fs.writeFile(path.join(tmp, 'index.txt'), '')
    await fs.writeFile(path.join(tmp, 'ca.cnf'), caConfig(sans), { mode: 0o600 })
    await openssl(
      ['ca', '-batch', '-notext', '-config', 'ca.cnf', '-extensions', 'leaf', '-cert', path.join(dir, CA_CERT)].concat([
        '-keyfile',
        path.join(dir, CA_KEY),
        '-in',
        'req.csr',
        '-out',
        path.join('out', TLS_CERT),
        ...dates,
      ]),
      tmp,
    )
    await fs.copyFile(path.join(dir, CA_CERT), path.join(out, CA_CERT))
    for (const f of [CA_CERT, TLS_CERT, TLS_KEY]) await fs.chmod(path.join(out, f), 0o600)
    if (old) await fs.rename(target, path.join(tmp, 'old'))
    await fs.rename(out, target)
  } finally {
    await fs.rm(tmp, { recursive: true, force: true })
  }
  const cert = summary(parseCert(await fs.readFile(path.join(target, TLS_CERT)), path.join(target, TLS_CERT)))
  return { name, dir: target, files: [CA_CERT, TLS_CERT, TLS_KEY].map((f) => path.join(target, f)), cert }
}

/** A minimal `openssl ca` configuration; paths are relative to the scratch dir (the cwd). */
function caConfig(sans: string[]): string {
  return [
    '[ca]',
    'default_ca = vstor',
    '[vstor]',
    'database = index.txt',
    'new_certs_dir = .',
    'default_md = sha256',
    'policy = policy_cn',
    'unique_subject = no',
    'email_in_dn = no',
    'rand_serial = yes',
    'copy_extensions = none',
    '[policy_cn]',
    'commonName = supplied',
    '[leaf]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature',
    'extendedKeyUsage = serverAuth,clientAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    ...(sans.length ? [`subjectAltName = ${sans.join(',')}`] : []),
    '',
  ].join('\n')
}
