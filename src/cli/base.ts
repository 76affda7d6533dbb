// Base class of every vstor command: the global flags, one controller
// connection per command run (closed in finally; the Unix socket, or TLS with
// --controller), and the one place where errors become output and exit codes.
// Invariants: an expected failure (VstorError) never prints a stack; exit
// codes are 0 ok, 1 user error, 2 usage, 3 environment, 4 internal; under
// --json every outcome is JSON on stdout.

import { Command, Errors, Flags } from '@oclif/core'
import { DEFAULT_DATA_DIR, DEFAULT_SOCKET, dataDir, socketPath } from '../config'
import { VstorError, toVstorError } from '../errors'
import type { ErrorCode } from '../errors'
import { connectController, parseHostPort, type ControllerAddress, type TcpAddress } from '../protocol/connection'
import type { Connection } from '../protocol/connection'
import path from 'node:path'
import type { CliMethods, Notes } from '../protocol/messages'

export type CliMethod = keyof CliMethods
/** A note from the controller, typed by its method (e.g. 'progress' during disk create --zero). */
export type Note = { [N in keyof Notes]: { method: N; params: Notes[N] } }[keyof Notes]

/** The global flags that say where the controller is. */
export interface AddressFlags {
  socket?: string
  controller?: string
  'tls-dir'?: string
}

export interface Client {
  call<M extends CliMethod>(method: M, params: CliMethods[M][0]): Promise<CliMethods[M][1]>
}

export abstract class VstorCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    socket: Flags.string({
      description: 'Unix socket of the controller',
      helpValue: 'PATH',
      env: 'VSTOR_SOCKET',
      default: DEFAULT_SOCKET,
      helpGroup: 'GLOBAL',
    }),
    'data-dir': Flags.string({
      description: 'directory of the controller database and log',
      helpValue: 'DIR',
      env: 'VSTOR_DATA_DIR',
      default: DEFAULT_DATA_DIR,
      helpGroup: 'GLOBAL',
    }),
    controller: Flags.string({
      description: 'reach the controller at HOST:PORT over TCP with mutual TLS instead of the socket (needs --tls-dir)',
      helpValue: 'HOST:PORT',
      env: 'VSTOR_CONTROLLER',
      helpGroup: 'GLOBAL',
    }),
    'tls-dir': Flags.string({
      description: "this host's ca.crt, tls.crt and tls.key (a directory from `vstor tls issue`)",
      helpValue: 'DIR',
      env: 'VSTOR_TLS_DIR',
      helpGroup: 'GLOBAL',
    }),
  }

  private connections: Connection[] = []

  /** Resolved paths from the global flags. */
  protected paths(flags: { socket?: string; 'data-dir'?: string }): { socket: string; dataDir: string } {
    return { socket: socketPath(flags.socket), dataDir: dataDir(flags['data-dir']) }
  }

  /** Where the controller is: --controller HOST:PORT (TLS, with --tls-dir), else the socket. */
  protected address(flags: AddressFlags): ControllerAddress {
    return this.tcpAddress(flags) ?? { socket: socketPath(flags.socket) }
  }

  /** --controller with --tls-dir, or null without --controller. */
  protected tcpAddress(flags: AddressFlags): TcpAddress | null {
    if (!flags.controller) return null
    const { host, port } = parseHostPort(flags.controller, '--controller')
    return { host, port, tlsDir: this.tlsDir(flags, '--controller') }
  }

  /** --tls-dir, absolute; `forWhat` names the flag that needs it. */
  protected tlsDir(flags: AddressFlags, forWhat: string): string {
    const dir = flags['tls-dir']
    if (!dir) {
      throw new VstorError(
        'BAD_ARGUMENT',
        `${forWhat} needs --tls-dir DIR (or VSTOR_TLS_DIR): this host's directory from \`vstor tls issue CA_DIR NAME\``,
      )
    }
    return path.resolve(dir)
  }

  /**
   * Connect to the controller as a CLI client; the connection closes when the command ends.
   * Notes the controller sends (already validated) go to `onNote`; without one they are ignored.
   */
  protected async client(flags: AddressFlags, onNote?: (note: Note) => void): Promise<Client> {
    const { conn } = await connectController(this.address(flags), { role: 'cli', pid: process.pid })
    this.connections.push(conn)
    conn.onNote((method, params) => onNote?.({ method, params } as Note))
    return { call: (method, params) => conn.call(method, params) }
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    for (const c of this.connections.splice(0)) c.close()
    return super.finally(err)
  }

  /** Plain JSON (no colours), so scripts and `jq` read it whatever the terminal. */
  protected override logJson(json: unknown): void {
    process.stdout.write(JSON.stringify(json, null, 2) + '\n')
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err // this.exit() from a command: already handled
    const { code, message, exit } = describe(err, `${this.config.bin} ${(this.id ?? '').replaceAll(':', ' ')}`)
    if (this.jsonEnabled()) {
      this.logJson({ error: { code, message } })
    } else {
      process.stderr.write(`vstor: ${message}\n`)
      if (exit === 4 && process.env.VSTOR_DEBUG && err.stack) process.stderr.write(err.stack + '\n')
    }
    return this.exit(exit)
  }
}

/** Error → what the user sees. oclif parse errors are usage errors (exit 2). */
function describe(err: Error, command: string): { code: ErrorCode | 'USAGE'; message: string; exit: number } {
  if (err instanceof VstorError) return { code: err.code, message: err.message, exit: err.exitCode }
  if (err instanceof Errors.CLIError) {
    const exit = err.oclif?.exit ?? 2
    const text = err.message.replace(/\nSee more help with --help$/, '').replace(/^The following error occurred:\n\s*/, '')
    const message = text + `\n(see \`${command} --help\`)`
    return { code: exit === 2 ? 'USAGE' : 'INTERNAL', message, exit }
  }
  const v = toVstorError(err)
  return { code: v.code, message: `internal error: ${v.message} (a bug: rerun with VSTOR_DEBUG=1 and report it)`, exit: v.exitCode }
}
