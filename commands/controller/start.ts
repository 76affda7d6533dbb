import { Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { parseHostPort } from '../../src/protocol/address'
import { parseDuration } from '../../src/size'

export default class ControllerStart extends VstorCommand {
  static override summary = 'Start the controller (detached unless --foreground)'

  static override description =
    'Start the controller: it keeps the authoritative extent table in <data-dir>/vstor.db and serves agents and the CLI on the socket ' +
    '(and with --listen, over TCP with mutual TLS to other hosts). ' +
    'Detaches and returns once the socket answers, unless --foreground.'

  static override examples = [
    '<%= config.bin %> controller start',
    '<%= config.bin %> controller start --data-dir /srv/vstor --socket /run/vstor/vstor.sock',
    '<%= config.bin %> controller start --foreground --refresh-interval 30s --no-space-timeout 10s',
    '<%= config.bin %> controller start --listen 198.18.0.1:7420 --tls-dir /etc/vstor/ca/ctl',
  ]

  static override flags = {
    foreground: Flags.boolean({ description: 'run in this process until SIGTERM or `vstor controller stop`' }),
    'refresh-interval': Flags.string({
      description: 'how often agents get a full copy of the table',
      helpValue: 'DURATION',
      default: '60s',
    }),
    'no-space-timeout': Flags.string({
      description: 'how long a write into a full pool waits for a new device before ENOSPC',
      helpValue: 'DURATION',
      default: '5s',
    }),
    'agent-timeout': Flags.string({
      description:
        'how long a change every agent must apply first (move switch, no-write, resize) waits for them before it fails naming them',
      helpValue: 'DURATION',
      default: '10s',
    }),
    listen: Flags.string({
      description:
        'also serve agents and CLIs of other hosts over TCP with mutual TLS at this address (0.0.0.0:PORT for all); ' +
        "needs --tls-dir with the controller's certificate",
      helpValue: 'HOST:PORT',
    }),
    'hello-timeout': Flags.string({
      description: 'how long a client may take to say hello after connecting before it is dropped',
      helpValue: 'DURATION',
      default: '10s',
    }),
  }

  async run(): Promise<{ pid: number; socket: string; dataDir: string; listen?: string } | undefined> {
    const { flags } = await this.parse(ControllerStart)
    const opts = {
      ...this.paths(flags),
      refreshIntervalMs: parseDuration(flags['refresh-interval'], '--refresh-interval'),
      noSpaceTimeoutMs: parseDuration(flags['no-space-timeout'], '--no-space-timeout'),
      agentTimeoutMs: parseDuration(flags['agent-timeout'], '--agent-timeout'),
      ...(flags.listen ? { listen: { ...parseHostPort(flags.listen, '--listen'), tlsDir: this.tlsDir(flags, '--listen') } } : {}),
      helloTimeoutMs: parseDuration(flags['hello-timeout'], '--hello-timeout'),
    }
    const controller = await import('../../src/controller/index.js')
    if (flags.foreground) {
      // The detached start re-runs this command with --foreground in a child; it signals readiness itself.
      await controller.runController(opts)
      return undefined
    }
    const { pid } = await controller.startControllerDetached(opts)
    const tls = opts.listen ? `, tls ${flags.listen}` : ''
    this.log(`controller started (pid ${pid}), socket ${opts.socket}${tls}, data dir ${opts.dataDir}`)
    return { pid, socket: opts.socket, dataDir: opts.dataDir, ...(opts.listen ? { listen: flags.listen } : {}) }
  }
}
