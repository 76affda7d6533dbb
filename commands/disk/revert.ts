import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskRevert extends VstorCommand {
  static override summary = 'Point a disk back at one of its snapshots'

  static override description =
    "Give NAME the contents (and size) of SNAP, one of its snapshots, like LVM's merge. What NAME holds now is lost, except what other " +
    'snapshots keep. Refused while any agent has NAME open: close it everywhere first. The snapshot stays.'

  static override examples = ['<%= config.bin %> disk revert vm1 --to vm1-before-upgrade']

  static override args = {
    name: Args.string({ description: 'the disk to revert', required: true }),
  }

  static override flags = {
    to: Flags.string({ helpValue: 'SNAP', description: 'a snapshot of NAME', required: true }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskRevert)
    const d = await (await this.client(flags)).call('disk.revert', { name: args.name, to: flags.to })
    this.log(`disk ${d.name} reverted to snapshot ${flags.to}`)
    return d
  }
}
