// The files behind TLS: a tls dir holds ca.crt (the cluster CA), tls.crt (this host's
// certificate, CN = its name) and tls.key; a CA dir holds ca.crt and ca.key plus one
// tls dir per issued name. Reading, checking and describing certificates lives here;
// making them (openssl) is src/cli/tls.ts.
//
// Invariants: readTlsDir returns only a well-formed set: all three files readable PEM, the
// key private to its owner (no group/other bits, as ssh insists) and matching the
// certificate; anything else is a VstorError that names the file and says what to do.
// Whether a certificate is trusted (issuer, dates) is the peer's decision, made in the
// handshake; certProblem only explains a refusal (client) or stops a server that every
// client would refuse.

import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { VstorError } from '../errors'

export const CA_CERT = 'ca.crt'
export const CA_KEY = 'ca.key'
export const TLS_CERT = 'tls.crt'
export const TLS_KEY = 'tls.key'

export interface TlsFiles {
  dir: string
  ca: Buffer
  cert: Buffer
  key: Buffer
  /** This host's certificate, parsed. */
  x509: crypto.X509Certificate
  caX509: crypto.X509Certificate
}

/** What a person needs to know about a certificate. */
export interface CertSummary {
  /** The CN: a host's vstor name. */
  name: string
  issuer: string
  sans: string[]
  notBefore: string // ISO time
  notAfter: string // ISO time
  fingerprint: string // SHA-256
}

const ISSUE_HINT = 'issue a certificate with `vstor tls issue CA_DIR NAME` on the host that keeps the cluster CA and copy DIR/NAME here'

async function readFile(dir: string, file: string): Promise<Buffer> {
  const p = path.join(dir, file)
  return fs.readFile(p).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EACCES')
      throw new VstorError('BAD_ARGUMENT', `cannot read ${p}: permission denied (run as root or as the owner of ${dir})`)
    throw new VstorError('BAD_ARGUMENT', `cannot read ${p}: ${e.message}`)
  })
}

export function parseCert(pem: Buffer | string, file: string): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(pem)
  } catch (e) {
    throw new VstorError('BAD_ARGUMENT', `${file} is not a PEM certificate (${(e as Error).message})`)
  }
}

/** The value of one attribute (CN) in an X509Certificate subject/issuer text. */
export function dnField(dn: string, field = 'CN'): string | null {
  for (const line of dn.split('\n')) if (line.startsWith(`${field}=`)) return line.slice(field.length + 1)
  return null
}

export function summary(c: crypto.X509Certificate): CertSummary {
  return {
    name: dnField(c.subject) ?? c.subject,
    issuer: dnField(c.issuer) ?? c.issuer,
    sans: (c.subjectAltName ?? '')
      .split(', ')
      .filter(Boolean)
      .map((s) => s.replace(/^IP Address:/, 'IP:')),
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    fingerprint: c.fingerprint256,
  }
}

/** Why a certificate is not usable now against this CA, in plain words; null when it is. */
export function certProblem(c: crypto.X509Certificate, ca: crypto.X509Certificate, now = new Date()): string | null {
  if (!c.checkIssued(ca) || !c.verify(ca.publicKey)) {
    return `it was issued by '${dnField(c.issuer) ?? c.issuer}', not by this cluster's CA '${dnField(ca.subject) ?? ca.subject}'`
  }
  if (now < new Date(c.validFrom)) return `it is not valid before ${new Date(c.validFrom).toISOString()} (check the clocks)`
  if (now > new Date(c.validTo)) return `it expired on ${new Date(c.validTo).toISOString()}`
  return null
}

/** Load and check a tls dir (see the invariants). */
export async function readTlsDir(dir: string): Promise<TlsFiles> {
  const abs = path.resolve(dir)
  const st = await fs.stat(abs).catch(() => null)
  if (!st?.isDirectory()) throw new VstorError('BAD_ARGUMENT', `--tls-dir ${abs} is not a directory; ${ISSUE_HINT}`)
  const names = [CA_CERT, TLS_CERT, TLS_KEY]
  const present = await Promise.all(
    names.map((f) =>
      fs.lstat(path.join(abs, f)).then(
        () => true,
        () => false,
      ),
    ),
  )
  const missing = names.filter((_, i) => !present[i])
  if (missing.length) {
    throw new VstorError('BAD_ARGUMENT', `${abs} has no ${missing.join(', ')}: --tls-dir must hold ${names.join(', ')}; ${ISSUE_HINT}`)
  }
  const [ca, cert, key] = (await Promise.all(names.map((f) => readFile(abs, f)))) as [Buffer, Buffer, Buffer]
  const keyFile = path.join(abs, TLS_KEY)
  const mode = (await fs.stat(keyFile)).mode & 0o777
  if (mode & 0o077) {
    throw new VstorError('BAD_ARGUMENT', `${keyFile} is readable by others (mode 0${mode.toString(8)}): chmod 600 ${keyFile}`)
  }
  const caX509 = parseCert(ca, path.join(abs, CA_CERT))
  const x509 = parseCert(cert, path.join(abs, TLS_CERT))
  let keyObject: crypto.KeyObject
  try {
    keyObject = crypto.createPrivateKey(key)
  } catch (e) {
    throw new VstorError('BAD_ARGUMENT', `${keyFile} is not a PEM private key (${(e as Error).message})`)
  }
  if (!x509.checkPrivateKey(keyObject)) {
    throw new VstorError(
      'BAD_ARGUMENT',
      `${keyFile} is not the key of ${path.join(abs, TLS_CERT)}: copy the whole directory from \`vstor tls issue\``,
    )
  }
  return { dir: abs, ca, cert, key, x509, caX509 }
}

/** The CN of a certificate as node:tls reports it (a string, or several). */
export function peerCn(subject: { CN?: string | string[] } | undefined): string | null {
  const cn = subject?.CN
  if (Array.isArray(cn)) return cn[0] ?? null
  return cn ?? null
}

/** OpenSSL's verify results (node:tls error codes) in plain words. */
export function verifyReason(code: string | undefined | null): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'its certificate has expired'
    case 'CERT_NOT_YET_VALID':
      return 'its certificate is not valid yet (check the clocks)'
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return "its certificate is not signed by this cluster's CA"
    case 'INVALID_PURPOSE':
      return 'its certificate is not meant for this use (key usage)'
    case 'CERT_REVOKED':
      return 'its certificate was revoked'
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'its certificate does not name the address that was dialled'
    default:
      return code ? `certificate check failed (${code.toLowerCase().replace(/_/g, ' ')})` : 'certificate check failed'
  }
}
