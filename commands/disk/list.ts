import { Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { disksTable } from '../../src/cli/format'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskList extends VstorCommand {
  static override summary = 'List virtual disks'

  static override description = 'List virtual disks with their size, allocated space and which agents have them open.'

  static override examples = ['<%= config.bin %> disk list', '<%= config.bin %> disk list --json | jq -r ".[].name"']

  static override flags = {
    bytes: Flags.boolean({ description: 'show sizes in bytes' }),
  }

  async run(): Promise<DiskInfo[]> {
    const { flags } = await this.parse(DiskList)
    const disks = await (await this.client(flags)).call('disk.list', {})
    this.log(disksTable(disks, flags.bytes))
    return disks
  }
}
