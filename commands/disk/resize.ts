import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { progress, type Progress } from '../../src/cli/progress'
import { UNIT } from '../../src/config'
import { VstorError } from '../../src/errors'
import { formatSize, parseSize, roundUp } from '../../src/size'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskResize extends VstorCommand {
  static override summary = 'Grow a disk online (or shrink it with --shrink)'

  static override description =
    'Change the size of a disk. Growing works while the disk is in use: a thin disk grows with zero extents, a thick one gets new ' +
    'space that reads zeros; every agent shows the new size at once and open fds keep working (then `losetup -c DEV` and ' +
    '`resize2fs`). Shrinking drops the data past the new end: it needs --shrink and is refused while any agent has the disk open.'

  static override examples = ['<%= config.bin %> disk resize vm1 --size 40G', '<%= config.bin %> disk resize scratch --size 1G --shrink']

  static override args = {
    name: Args.string({ description: 'disk name', required: true }),
  }

  static override flags = {
    size: Flags.string({ helpValue: 'SIZE', description: 'the new size (rounded up to 1M), e.g. 40G', required: true }),
    shrink: Flags.boolean({ description: 'allow a smaller size (the data past it is lost)' }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskResize)
    diskName(args.name) // refused here, in the user's terms, before any connection
    const asked = parseSize(flags.size, '--size')
    if (asked <= 0) throw new VstorError('BAD_SIZE', `bad --size '${flags.size}': a disk needs at least 1 byte`)
    const size = roundUp(asked, UNIT)
    let bar: Progress | undefined
    const client = await this.client(flags, (note) => {
      if (note.method !== 'progress') return
      bar ??= progress(`zeroing new space of ${args.name}`, note.params.total, { json: this.jsonEnabled() })
      bar.update(note.params.done)
    })
    let disk: DiskInfo
    try {
      disk = await client.call('disk.resize', { name: args.name, size, ...(flags.shrink ? { shrink: true } : {}) })
    } finally {
      bar?.stop()
    }
    this.log(`disk ${disk.name} is now ${formatSize(disk.size)}; every agent shows the new size`)
    return disk
  }
}
