import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { DEFAULT_DAYS, issueCert, type IssueResult } from '../../src/cli/tls'

export default class TlsIssue extends VstorCommand {
  static override summary = 'Issue a certificate for a host (controller, agent or CLI) from the cluster CA'

  static override description =
    'Issue a certificate with CN NAME from the CA in DIR and write DIR/NAME/{ca.crt,tls.crt,tls.key} (mode 0600): a ' +
    'directory to copy to that host and pass as --tls-dir. The certificate names NAME (when it is a host name or IP) and ' +
    "every --san; clients check that the controller's certificate names the address they dial, so give the controller " +
    'one --san per address it is reached at. The controller sees a client as NAME. Refuses an existing NAME unless --force.'

  static override examples = [
    '<%= config.bin %> tls issue /etc/vstor/ca ctl --san 198.18.0.1 --san ctl.example',
    '<%= config.bin %> tls issue /etc/vstor/ca host2',
    '<%= config.bin %> tls issue /etc/vstor/ca host2 --force --days 365',
  ]

  static override args = {
    dir: Args.string({ description: 'the CA directory (from `vstor tls init`)', required: true }),
    name: Args.string({ description: "the host's name: the certificate's CN and the identity the controller sees", required: true }),
  }

  static override flags = {
    san: Flags.string({ helpValue: 'IP_OR_DNS', description: 'an IP address or DNS name the certificate also names', multiple: true }),
    days: Flags.integer({ helpValue: 'N', description: 'how long the certificate is valid, in days', default: DEFAULT_DAYS }),
    force: Flags.boolean({ description: 'replace an existing DIR/NAME' }),
  }

  async run(): Promise<IssueResult> {
    const { args, flags } = await this.parse(TlsIssue)
    const r = await issueCert(args.dir, args.name, { sans: flags.san ?? [], days: flags.days, force: flags.force })
    this.log(`issued '${r.name}' (${r.cert.sans.join(', ') || 'no SANs'}), valid until ${r.cert.notAfter}, in ${r.dir}`)
    this.log(`copy ${r.dir} to that host and pass --tls-dir with its path there`)
    return r
  }
}
