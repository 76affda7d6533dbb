import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { mapTable } from '../../src/cli/format'
import type { DiskMap } from '../../src/protocol/messages'

export default class DiskMapCommand extends VstorCommand {
  static override summary = "Show a disk's extent table"

  static override description =
    "Show a disk's extent table: each extent's offset, length, device, absolute device offset (label area included) and state."

  static override examples = [
    '<%= config.bin %> disk map vm1',
    '<%= config.bin %> disk map vm1 --bytes',
    '<%= config.bin %> disk map vm1 --json',
  ]

  static override args = {
    name: Args.string({ description: 'disk name', required: true }),
  }

  static override flags = {
    bytes: Flags.boolean({ description: 'show offsets and sizes in bytes' }),
  }

  async run(): Promise<DiskMap> {
    const { args, flags } = await this.parse(DiskMapCommand)
    diskName(args.name) // refused here, in the user's terms, before any connection
    const map = await (await this.client(flags)).call('disk.map', { name: args.name })
    this.log(mapTable(map, flags.bytes))
    return map
  }
}
