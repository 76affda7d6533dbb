import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { checkDiskName } from '../../src/cli/names'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskClone extends VstorCommand {
  static override summary = 'Make a writable copy of a disk or snapshot that shares its units'

  static override description =
    'Make NEW, a writable disk with the contents of SOURCE (a snapshot or a disk, which may be in use). Nothing is copied up front: ' +
    'both share their units and each side copies a unit on its first write to it. Deleting either frees only the units the other does not use.'

  static override examples = ['<%= config.bin %> disk clone golden-image vm7', '<%= config.bin %> disk clone vm1-before-upgrade vm1-test']

  static override args = {
    source: Args.string({ description: 'a snapshot or disk', required: true }),
    name: Args.string({ description: 'name of the new writable disk', required: true }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskClone)
    checkDiskName(args.name)
    const d = await (await this.client(flags)).call('disk.clone', { source: args.source, name: args.name })
    this.log(`clone ${d.name} of ${args.source} made (writable; units are copied on first write)`)
    return d
  }
}
