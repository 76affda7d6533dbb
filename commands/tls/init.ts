import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { DEFAULT_CA_DAYS, initCa, type InitResult } from '../../src/cli/tls'

export default class TlsInit extends VstorCommand {
  static override summary = 'Create the cluster CA for TCP connections with mutual TLS'

  static override description =
    'Create a certificate authority for one vstor cluster: DIR/ca.crt and DIR/ca.key (mode 0600, DIR mode 0700). ' +
    'Keep DIR on one trusted host; issue a certificate for the controller and for each host with `vstor tls issue DIR NAME`. ' +
    'Refuses a DIR that holds a CA already.'

  static override examples = ['<%= config.bin %> tls init /etc/vstor/ca', '<%= config.bin %> tls init /etc/vstor/ca --days 7300']

  static override args = {
    dir: Args.string({ description: 'directory for ca.crt and ca.key (created if missing)', required: true }),
  }

  static override flags = {
    days: Flags.integer({ helpValue: 'N', description: 'how long the CA is valid, in days', default: DEFAULT_CA_DAYS }),
  }

  async run(): Promise<InitResult> {
    const { args, flags } = await this.parse(TlsInit)
    const r = await initCa(args.dir, { days: flags.days })
    this.log(`created the cluster CA '${r.ca.name}' in ${r.dir} (valid until ${r.ca.notAfter})`)
    this.log(`next: ${this.config.bin} tls issue ${r.dir} NAME --san ADDRESS   for the controller and for each host`)
    return r
  }
}
