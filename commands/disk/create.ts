import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { progress, type Progress } from '../../src/cli/progress'
import { UNIT } from '../../src/config'
import { VstorError } from '../../src/errors'
import { formatSize, parseSize, roundUp } from '../../src/size'
import type { DiskInfo } from '../../src/protocol/messages'

export default class DiskCreate extends VstorCommand {
  static override summary = 'Create a virtual disk (thick, or thin with --thin)'

  static override description =
    'Create a virtual disk. Sizes are rounded up to the 1 MiB allocation unit. A thick disk gets all its space now; ' +
    'a thin disk starts as zero extents and gets space on first write. With --zero the controller writes zeros over ' +
    "a thick disk's space before it creates the disk, so no bytes of a deleted disk show through (this takes as long " +
    'as writing the whole disk; a progress bar shows on a terminal).'

  static override examples = [
    '<%= config.bin %> disk create vm1 --size 20G',
    '<%= config.bin %> disk create scratch --size 1T --thin',
    '<%= config.bin %> disk create db --size 100G --device ssd0 --device ssd1',
    '<%= config.bin %> disk create clean --size 10G --zero',
  ]

  static override args = {
    name: Args.string({ description: 'disk name; the image appears as NAME.img on every mount', required: true }),
  }

  static override flags = {
    size: Flags.string({
      helpValue: 'SIZE',
      description: 'size: bytes or a number with K, M, G, T, P (binary units), e.g. 10G',
      required: true,
    }),
    device: Flags.string({ helpValue: 'DEVICE', description: 'allocate only from this device', multiple: true }),
    thin: Flags.boolean({ description: 'allocate on first write instead of now' }),
    zero: Flags.boolean({ description: 'write zeros over the new space before creating the disk (thick disks only)' }),
  }

  async run(): Promise<DiskInfo> {
    const { args, flags } = await this.parse(DiskCreate)
    diskName(args.name) // refused here, in the user's terms, before any connection
    // Checked here before connecting, so a typo never needs a controller.
    const asked = parseSize(flags.size, '--size')
    if (asked <= 0) throw new VstorError('BAD_SIZE', `bad --size '${flags.size}': a disk needs at least 1 byte (it is rounded up to 1M)`)
    if (flags.zero && flags.thin) throw new VstorError('BAD_ARGUMENT', '--zero is for thick disks; thin disks read zeros until written')
    const size = roundUp(asked, UNIT)
    if (size !== asked) this.logToStderr(`vstor: rounding size up to ${formatSize(size)} (${size} bytes), a multiple of the 1M unit`)
    // --zero: the controller reports bytes zeroed; the bar draws only on a terminal and never under --json
    let bar: Progress | undefined
    const client = await this.client(flags, (note) => {
      if (note.method !== 'progress') return
      bar ??= progress(`zeroing ${args.name}`, note.params.total, { json: this.jsonEnabled() })
      bar.update(note.params.done)
    })
    let disk: DiskInfo
    try {
      disk = await client.call('disk.create', {
        name: args.name,
        size,
        ...(flags.device ? { devices: flags.device } : {}),
        ...(flags.thin ? { thin: true } : {}),
        ...(flags.zero ? { zero: true } : {}),
      })
    } finally {
      bar?.stop()
    }
    this.log(
      `created disk ${disk.name}: ${formatSize(disk.size)}, ${disk.thin ? 'thin' : 'thick'}${flags.zero ? ', zeroed' : ''}, ${formatSize(disk.allocated)} allocated`,
    )
    return disk
  }
}
