// Where a client finds the controller: its Unix socket on this host, or HOST:PORT over TCP
// with mutual TLS (certificates from a tls dir, see tlsfiles.ts). HOST:PORT text is parsed
// here and nowhere else.
//
// Invariants: a parsed host is a plain IPv4 address, an IPv6 address without brackets, or a
// DNS name; ports are 1-65535 (0 only where a caller allows it: listening in tests);
// formatHostPort(parseHostPort(x)) names the same endpoint as x.

import net from 'node:net'
import { VstorError } from '../errors'

export interface TcpAddress {
  host: string
  port: number
  /** Directory with ca.crt, tls.crt and tls.key (from `vstor tls issue`). */
  tlsDir: string
}
export type ControllerAddress = { socket: string } | TcpAddress

export function isTcp(a: ControllerAddress): a is TcpAddress {
  return 'host' in a
}

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

/** A DNS name vstor accepts: letter/digit labels with inner hyphens, at most 253 characters. */
export function isHostName(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every((l) => LABEL.test(l)) && !/^[0-9.]+$/.test(s)
}

/**
 * Parse `HOST:PORT`: `198.18.0.1:7420`, `[fd00::1]:7420`, `ctl.example:7420`.
 * `what` names the flag in errors (`--controller`, `--listen`). Throws BAD_ARGUMENT.
 */
export function parseHostPort(text: string, what = '--controller', opts: { allowPortZero?: boolean } = {}): { host: string; port: number } {
  const bad = (why: string): never => {
    throw new VstorError('BAD_ARGUMENT', `bad ${what} '${text}': ${why}`)
  }
  const s = text.trim()
  if (!s) bad('give HOST:PORT, e.g. 198.18.0.1:7420 or [fd00::1]:7420')
  let host: string
  let port: string
  if (s.startsWith('[')) {
    const end = s.indexOf(']')
    if (end < 0) bad("an IPv6 address opened with '[' needs its ']', e.g. [fd00::1]:7420")
    host = s.slice(1, end)
    const rest = s.slice(end + 1)
    if (!rest) bad(`no port: write [${host}]:PORT, e.g. [${host}]:7420`)
    if (!rest.startsWith(':')) bad(`expected ':PORT' after ']', found '${rest}'`)
    port = rest.slice(1)
    if (!net.isIPv6(host)) bad(`'${host}' in brackets is not an IPv6 address (write IPv4 addresses and names without brackets)`)
  } else {
    const colons = s.split(':').length - 1
    if (colons === 0) bad(`no port: write ${s}:PORT, e.g. ${s}:7420`)
    if (colons > 1) bad(`write an IPv6 address in brackets, e.g. [${net.isIPv6(s) ? s : 'fd00::1'}]:7420`)
    const at = s.lastIndexOf(':')
    host = s.slice(0, at)
    port = s.slice(at + 1)
    if (!host) bad('no host before the port: write HOST:PORT, e.g. 0.0.0.0:7420 to listen everywhere')
    if (/^[0-9.]+$/.test(host) && !net.isIPv4(host)) bad(`'${host}' is not an IPv4 address`)
    if (!net.isIPv4(host) && !isHostName(host)) bad(`'${host}' is not an IP address or a host name`)
  }
  if (!/^[0-9]{1,5}$/.test(port)) bad(`the port '${port}' is not a number from 1 to 65535`)
  const n = Number(port)
  if (n > 65535 || (n === 0 && !opts.allowPortZero)) bad(`the port ${n} is not from 1 to 65535`)
  return { host, port: n }
}

/** `host:port`, with IPv6 hosts in brackets. */
export function formatHostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** For messages and logs: the socket path, or `HOST:PORT (TLS)`. */
export function describeAddress(a: ControllerAddress): string {
  return isTcp(a) ? `${formatHostPort(a.host, a.port)} (TLS)` : a.socket
}
