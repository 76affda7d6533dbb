// HOST:PORT is parsed in one place: IPv4, [IPv6]:port and host names, each mistake a
// BAD_ARGUMENT naming the flag and showing the right form.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { VstorError } from '../../src/errors'
import { describeAddress, formatHostPort, parseHostPort } from '../../src/protocol/address'

test('parseHostPort accepts IPv4, bracketed IPv6 and host names', () => {
  assert.deepEqual(parseHostPort('198.18.0.1:7420'), { host: '198.18.0.1', port: 7420 })
  assert.deepEqual(parseHostPort('[fd00::1]:7420'), { host: 'fd00::1', port: 7420 })
  assert.deepEqual(parseHostPort('[::]:1'), { host: '::', port: 1 })
  assert.deepEqual(parseHostPort('ctl.example:65535'), { host: 'ctl.example', port: 65535 })
  assert.deepEqual(parseHostPort(' localhost:80 '), { host: 'localhost', port: 80 })
  assert.deepEqual(parseHostPort('0.0.0.0:0', '--listen', { allowPortZero: true }), { host: '0.0.0.0', port: 0 })
  for (const s of ['198.18.0.1:7420', '[fd00::1]:7420', 'ctl.example:7420']) {
    const { host, port } = parseHostPort(s)
    assert.equal(formatHostPort(host, port), s)
  }
  assert.equal(describeAddress({ host: 'fd00::1', port: 7, tlsDir: '/t' }), '[fd00::1]:7 (TLS)')
  assert.equal(describeAddress({ socket: '/run/vstor/vstor.sock' }), '/run/vstor/vstor.sock')
})

test('parseHostPort explains each mistake', () => {
  const cases: [string, RegExp][] = [
    ['', /bad --controller '': give HOST:PORT, e\.g\. 198\.18\.0\.1:7420/],
    ['ctl', /no port: write ctl:PORT, e\.g\. ctl:7420/],
    ['fd00::1', /write an IPv6 address in brackets, e\.g\. \[fd00::1\]:7420/],
    ['fd00::1:7420', /write an IPv6 address in brackets/],
    ['[fd00::1]', /no port: write \[fd00::1\]:PORT/],
    ['[fd00::1:7420', /needs its '\]'/],
    ['[1.2.3.4]:7420', /is not an IPv6 address/],
    ['[fd00::1]7420', /expected ':PORT' after '\]'/],
    [':7420', /no host before the port/],
    ['1.2.3:7420', /'1\.2\.3' is not an IPv4 address/],
    ['300.1.1.1:7420', /is not an IPv4 address/],
    ['bad_name:7420', /'bad_name' is not an IP address or a host name/],
    ['-ctl:7420', /is not an IP address or a host name/],
    ['ctl:http', /the port 'http' is not a number from 1 to 65535/],
    ['ctl:0', /the port 0 is not from 1 to 65535/],
    ['ctl:65536', /the port 65536 is not from 1 to 65535/],
    ['ctl:-1', /the port '-1' is not a number/],
  ]
  for (const [text, why] of cases) {
    assert.throws(
      () => parseHostPort(text),
      (e: unknown) => e instanceof VstorError && e.code === 'BAD_ARGUMENT' && why.test(e.message),
      `'${text}' should fail with ${why}`,
    )
  }
  assert.throws(() => parseHostPort('x', '--listen'), /bad --listen 'x'/)
})
