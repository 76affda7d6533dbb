// `vstor tls init` and `vstor tls issue` through the real CLI and openssl: the layout, the
// modes (files 0600, directories 0700), CN = NAME, the SANs, and no overwriting without
// --force.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { vstor } from './run'

const mode = (p: string): number => fs.statSync(p).mode & 0o777
const cert = (p: string): crypto.X509Certificate => new crypto.X509Certificate(fs.readFileSync(p))
const errorOf = (stdout: string): { code: string; message: string } =>
  (JSON.parse(stdout) as { error: { code: string; message: string } }).error

test('tls init makes a 0700 CA dir with 0600 ca.crt and ca.key, and refuses an existing CA', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-tls-'))
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const dir = path.join(tmp, 'ca')
  const r = vstor(['tls', 'init', dir, '--json'])
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { dir: string; files: string[]; ca: { name: string; notAfter: string } }
  assert.equal(out.dir, dir)
  assert.deepEqual(out.files, [path.join(dir, 'ca.crt'), path.join(dir, 'ca.key')])
  assert.deepEqual(fs.readdirSync(dir).sort(), ['ca.crt', 'ca.key'], 'no scratch files left')
  assert.equal(mode(dir), 0o700)
  for (const f of out.files) assert.equal(mode(f), 0o600, f)
  const ca = cert(path.join(dir, 'ca.crt'))
  assert.ok(ca.ca, 'a CA certificate')
  assert.match(out.ca.name, /^vstor cluster CA [0-9a-f]{8}$/)
  assert.ok(ca.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'ca.key')))))

  const before = fs.readFileSync(path.join(dir, 'ca.key'))
  const again = vstor(['tls', 'init', dir])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /^vstor: .*ca holds a cluster CA already \(ca\.crt\): issue certificates from it with `vstor tls issue/)
  assert.deepEqual(fs.readFileSync(path.join(dir, 'ca.key')), before, 'the CA is untouched')
})

test('tls issue writes DIR/NAME/{ca.crt,tls.crt,tls.key}: 0600, CN = NAME, the SANs; refuses overwrite without --force', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-tls-'))
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const dir = path.join(tmp, 'ca')
  assert.equal(vstor(['tls', 'init', dir]).code, 0)
  const r = vstor(['tls', 'issue', dir, 'ctl', '--san', '198.18.0.1', '--san', 'ctl.example', '--san', 'fd00::1', '--days', '30', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as {
    name: string
    dir: string
    files: string[]
    cert: { name: string; sans: string[]; notAfter: string }
  }
  const host = path.join(dir, 'ctl')
  assert.equal(out.dir, host)
  assert.deepEqual(fs.readdirSync(host).sort(), ['ca.crt', 'tls.crt', 'tls.key'])
  assert.deepEqual(fs.readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'ctl'], 'no scratch dirs left')
  assert.equal(mode(host), 0o700)
  for (const f of fs.readdirSync(host)) assert.equal(mode(path.join(host, f)), 0o600, f)

  const c = cert(path.join(host, 'tls.crt'))
  const ca = cert(path.join(dir, 'ca.crt'))
  assert.equal(c.subject, 'CN=ctl')
  assert.ok(!c.ca)
  assert.ok(c.checkIssued(ca) && c.verify(ca.publicKey), 'issued by the cluster CA')
  assert.ok(c.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(host, 'tls.key')))))
  assert.deepEqual(fs.readFileSync(path.join(host, 'ca.crt')), fs.readFileSync(path.join(dir, 'ca.crt')))
  assert.equal(c.subjectAltName, 'DNS:ctl, IP Address:198.18.0.1, DNS:ctl.example, IP Address:FD00:0:0:0:0:0:0:1')
  assert.deepEqual(out.cert.sans, ['DNS:ctl', 'IP:198.18.0.1', 'DNS:ctl.example', 'IP:FD00:0:0:0:0:0:0:1'])
  assert.ok(c.checkIP('198.18.0.1') && c.checkHost('ctl.example'))
  assert.deepEqual(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'good for TLS server and client')
  const days = (new Date(c.validTo).getTime() - new Date(c.validFrom).getTime()) / 86_400_000
  assert.equal(Math.round(days), 30)

  const fingerprint = c.fingerprint256
  const again = vstor(['tls', 'issue', dir, 'ctl', '--json'])
  assert.equal(again.code, 1)
  assert.equal(errorOf(again.stdout).code, 'EXISTS')
  assert.match(errorOf(again.stdout).message, /ctl exists already: pass --force/)
  assert.equal(cert(path.join(host, 'tls.crt')).fingerprint256, fingerprint, 'untouched')
  const forced = vstor(['tls', 'issue', dir, 'ctl', '--force'])
  assert.equal(forced.code, 0, forced.stderr)
  assert.match(forced.stdout, /^issued 'ctl' \(DNS:ctl\), valid until /)
  assert.notEqual(cert(path.join(host, 'tls.crt')).fingerprint256, fingerprint, 'replaced')
  for (const f of fs.readdirSync(host)) assert.equal(mode(path.join(host, f)), 0o600, f)
  assert.deepEqual(fs.readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'ctl'])
})

test('tls issue: bad name, bad --san, no CA are user errors (exit 1) with what to do', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-tls-'))
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const dir = path.join(tmp, 'ca')
  const none = vstor(['tls', 'issue', dir, 'h1'])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /^vstor: no cluster CA in .*: create one with `vstor tls init /)
  assert.equal(vstor(['tls', 'init', dir]).code, 0)
  const name = vstor(['tls', 'issue', dir, '../evil', '--json'])
  assert.equal(name.code, 1)
  assert.equal(errorOf(name.stdout).code, 'BAD_NAME')
  const san = vstor(['tls', 'issue', dir, 'h1', '--san', 'not a name'])
  assert.equal(san.code, 1)
  assert.match(san.stderr, /^vstor: bad --san 'not a name': give an IP address or a DNS name/)
  const file = vstor(['tls', 'issue', dir, 'ca.crt'])
  assert.equal(file.code, 1)
  assert.match(file.stderr, /ca\.crt exists and is not a directory/)
  assert.deepEqual(fs.readdirSync(dir).sort(), ['ca.crt', 'ca.key'], 'nothing left behind')
})
