// Generates man/vstor.1 from the oclif commands (summary, description, usage,
// flags, examples) plus the hand-written sections below. Run after a build:
// `node dist/src/cli/man.js` (npm run man). Invariant: the output depends only
// on the command definitions, so regenerating gives the committed file
// byte for byte (no dates, no terminal widths).

import fs from 'node:fs'
import path from 'node:path'
import { Config, settings } from '@oclif/core'
import type { Command } from '@oclif/core'

type Cmd = Command.Loadable
type FlagDef = Command.Flag.Cached

const GLOBAL_FLAGS = new Set(['socket', 'data-dir', 'controller', 'tls-dir', 'json'])

/** Escape text for roff: backslashes, hyphens (so they stay ASCII), and a leading dot or quote. */
export function esc(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? '\\&' + l : l))
    .join('\n')
}

function fill(text: string, bin: string): string {
  return text.replace(/<%=\s*config\.bin\s*%>/g, bin).replace(/^\$ /, '')
}

function flagValue(f: FlagDef): string {
  if (f.type === 'boolean') return ''
  const opts = (f as { options?: readonly string[] }).options
  if (opts?.length) return ` {${opts.join('|')}}`
  return ` ${(f as { helpValue?: string }).helpValue ?? f.name.toUpperCase().replace(/-/g, '_')}`
}

/** The command's own (non-global) flags, required first, then by name. */
export function ownFlags(cmd: Cmd): FlagDef[] {
  return Object.values(cmd.flags)
    .filter((f) => !GLOBAL_FLAGS.has(f.name) && !f.hidden)
    .sort((a, b) => Number(Boolean(b.required)) - Number(Boolean(a.required)) || a.name.localeCompare(b.name))
}

/** One-line usage: `vstor disk create NAME --size SIZE [--device DEVICE]... [--thin]`. */
export function usage(cmd: Cmd, bin: string): string {
  const parts = [bin, ...cmd.id.split(':')]
  for (const a of Object.values(cmd.args)) parts.push(a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`)
  for (const f of ownFlags(cmd)) {
    const one = `--${f.name}${flagValue(f)}`
    const rep = (f as { multiple?: boolean }).multiple ? '...' : ''
    parts.push(f.required ? one + rep : `[${one}]${rep}`)
  }
  return parts.join(' ')
}

function flagDetails(f: FlagDef): string {
  const extra: string[] = []
  const def = (f as { default?: unknown }).default
  if (def !== undefined && typeof def !== 'function' && def !== false) extra.push(`default: ${String(def)}`)
  if (f.env) extra.push(`environment: ${f.env}`)
  if ((f as { multiple?: boolean }).multiple) extra.push('repeatable')
  return (f.description ?? f.summary ?? '') + (extra.length ? ` (${extra.join('; ')})` : '')
}

function section(cmd: Cmd, bin: string): string[] {
  const out = [`.SS "${esc(`${bin} ${cmd.id.split(':').join(' ')}`)}"`]
  out.push('.nf', `\\fB${esc(usage(cmd, bin))}\\fR`, '.fi')
  const text = fill(cmd.description ?? cmd.summary ?? '', bin)
  if (text) out.push('.PP', esc(text))
  for (const a of Object.values(cmd.args)) out.push('.TP', `\\fI${esc(a.name.toUpperCase())}\\fR`, esc(a.description ?? ''))
  for (const f of ownFlags(cmd)) {
    const char = f.char ? `\\fB\\-${f.char}\\fR, ` : ''
    out.push('.TP', `${char}\\fB${esc('--' + f.name)}\\fR${f.type === 'boolean' ? '' : ' \\fI' + esc(flagValue(f).trim()) + '\\fR'}`)
    out.push(esc(flagDetails(f)))
  }
  const examples = (cmd.examples ?? []).map((e) => (typeof e === 'string' ? fill(e, bin) : fill(e.command, bin)))
  if (examples.length) out.push('.PP', 'Examples:', '.RS', '.nf', ...examples.map((e) => esc('$ ' + e)), '.fi', '.RE')
  return out
}

const HEAD = `.TH VSTOR 1 "" "vstor VERSION" "vstor manual"
.SH NAME
vstor \\- virtual disks as image files on a FUSE mount, mapped through an extent table
.SH SYNOPSIS
.B vstor
.I command
.RI [ arguments ]
.RI [ options ]
.SH DESCRIPTION
vstor serves virtual disks as plain image files
.IR MOUNTPOINT / NAME .img
on a FUSE mount. An \\fIagent\\fR (\\fBvstor mount\\fR) keeps a copy of each disk's extent table
and resolves every read and write through it onto backing devices (regular files or block devices).
The \\fIcontroller\\fR (\\fBvstor controller start\\fR) keeps the authoritative table in SQLite,
pushes changes to agents, replaces their copies periodically and answers their faults.
This command is the CLI; it talks to the controller over a Unix socket, or from another host
over TCP with mutual TLS (\\fB\\-\\-controller\\fR, \\fB\\-\\-tls\\-dir\\fR; certificates from \\fBvstor tls\\fR).
.PP
Sizes are bytes or a number with a binary suffix K, M, G, T or P (\\fB10G\\fR = 10 GiB).
Durations are like \\fB500ms\\fR, \\fB5s\\fR, \\fB2m\\fR.
Every command that reports something takes \\fB\\-\\-json\\fR and prints the data shapes described in the README.
.SH GLOBAL OPTIONS
.TP
\\fB\\-\\-socket\\fR \\fIPATH\\fR
Unix socket of the controller (default: /run/vstor/vstor.sock; environment: VSTOR_SOCKET).
.TP
\\fB\\-\\-data\\-dir\\fR \\fIDIR\\fR
Directory of the controller database and log (default: /var/lib/vstor; environment: VSTOR_DATA_DIR).
.TP
\\fB\\-\\-controller\\fR \\fIHOST:PORT\\fR
Reach the controller at HOST:PORT (\\fB198.18.0.1:7420\\fR, \\fB[fd00::1]:7420\\fR, \\fBctl.example:7420\\fR)
over TCP with mutual TLS instead of the socket; needs \\fB\\-\\-tls\\-dir\\fR (environment: VSTOR_CONTROLLER).
.TP
\\fB\\-\\-tls\\-dir\\fR \\fIDIR\\fR
This host's \\fIca.crt\\fR, \\fItls.crt\\fR and \\fItls.key\\fR: a directory made by \\fBvstor tls issue\\fR
(environment: VSTOR_TLS_DIR). The controller uses its own with \\fBcontroller start \\-\\-listen\\fR.
.TP
\\fB\\-\\-json\\fR
Print the result as JSON on standard output; errors become \\fB{"error":{"code":...,"message":...}}\\fR.
.TP
\\fB\\-\\-help\\fR
Show help for a command.
.SH COMMANDS`

const TAIL = `.SH EXIT STATUS
.TP
.B 0
Success.
.TP
.B 1
User error: a bad size or name, no such disk or device, a name in use, the pool is full, a device is busy.
.TP
.B 2
Usage error: unknown command or flag, missing argument, a value not among the choices.
.TP
.B 3
Environment: the controller is unreachable, a daemon did not start, a peer timed out,
a TLS certificate was refused by either side, openssl failed.
.TP
.B 4
Internal error or damaged database (see \\fBvstor\\-controller\\fR(8) for restoring a backup).
.PP
Errors are printed on standard error as \\fBvstor: \\fR\\fImessage\\fR, never with a stack trace
(set \\fBVSTOR_DEBUG=1\\fR to see one for internal errors).
.SH ENVIRONMENT
.TP
.B VSTOR_SOCKET
Default for \\fB\\-\\-socket\\fR.
.TP
.B VSTOR_DATA_DIR
Default for \\fB\\-\\-data\\-dir\\fR.
.TP
.B VSTOR_CONTROLLER
Default for \\fB\\-\\-controller\\fR.
.TP
.B VSTOR_TLS_DIR
Default for \\fB\\-\\-tls\\-dir\\fR.
.TP
.B VSTOR_DEBUG
Print stack traces of internal errors.
.SH FILES
.TP
.I /run/vstor/vstor.sock
Controller socket.
.TP
.I /var/lib/vstor/vstor.db
The SQLite database with devices, disks and extent tables (WAL mode).
.TP
.I /var/lib/vstor/controller.log
Log of a detached controller.
.TP
.I /run/vstor/agents/
Pid and log files of agents (next to the socket).
.SH SEE ALSO
.BR vstor\\-controller (8),
.BR vstor\\-mount (8),
.BR vstor\\-table (5),
.BR losetup (8),
.BR qemu\\-img (1),
.BR fusermount (1)
`

/** Visible commands, sorted by id: the list the man page documents. */
export function manCommands(config: Config): Cmd[] {
  return config.commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
}

export function renderMan(config: Config): string {
  const bin = config.bin
  const lines = [HEAD.replace('VERSION', config.version)]
  for (const cmd of manCommands(config)) lines.push(...section(cmd, bin))
  return lines.join('\n') + '\n' + TAIL
}

export const ROOT = path.resolve(__dirname, '..', '..', '..')

export async function loadConfig(root = ROOT): Promise<Config> {
  settings.enableAutoTranspile = false // compiled commands only
  return Config.load({ root })
}

async function main(): Promise<void> {
  const config = await loadConfig()
  const out = path.join(ROOT, 'man', 'vstor.1')
  fs.writeFileSync(out, renderMan(config))
  process.stdout.write(`wrote ${out}\n`)
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`vstor: man page generation failed: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(4)
  })
}
