import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { formatSize } from '../../src/size'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskDelete extends VstorCommand {
  static override summary = 'Delete a virtual disk and free its space'

  static override description = 'Delete a virtual disk and free its space. Refused while an agent has the disk open, unless --force.'

  static override examples = ['<%= config.bin %> disk delete vm1', '<%= config.bin %> disk delete vm1 --force']

  static override args = {
    name: Args.string({ description: 'disk name', required: true }),
  }

  static override flags = {
    force: Flags.boolean({ description: 'delete even if an agent has the disk open (its I/O then fails)' }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskDelete)
    diskName(args.name) // refused here, in the user's terms, before any connection
    const disk = await (await this.client(flags)).call('disk.delete', { name: args.name, ...(flags.force ? { force: true } : {}) })
    this.log(`deleted disk ${disk.name} (${formatSize(disk.size)}, ${formatSize(disk.allocated)} freed)`)
    return disk
  }
}
