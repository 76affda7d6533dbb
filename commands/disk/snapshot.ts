import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { checkDiskName } from '../../src/cli/names'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskSnapshot extends VstorCommand {
  static override summary = 'Make a read-only, crash-consistent snapshot of a disk (it may be in use)'

  static override description =
    'Make SNAPSHOT, a read-only disk with the contents NAME has now. NAME may be in use: every agent that has it applies the ' +
    'change before the snapshot is complete (writes wait meanwhile), so every write acknowledged before it is in it. Nothing is ' +
    'copied: both disks share their units, and the first write to a shared unit of NAME copies that unit (1 MiB). ' +
    'SNAPSHOT.img appears on every mount, read-only (writes give EROFS). Time depends on the number of extents, not the data.'

  static override examples = ['<%= config.bin %> disk snapshot vm1 vm1-before-upgrade']

  static override args = {
    name: Args.string({ description: 'the disk to snapshot', required: true }),
    snapshot: Args.string({ description: 'name of the new read-only disk', required: true }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskSnapshot)
    checkDiskName(args.snapshot)
    const d = await (await this.client(flags)).call('disk.snapshot', { name: args.name, snapshot: args.snapshot })
    this.log(`snapshot ${d.name} of ${args.name} made (read-only; it shares all of its data with ${args.name})`)
    return d
  }
}
