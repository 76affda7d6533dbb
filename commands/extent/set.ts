import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { mapTable } from '../../src/cli/format'
import { VstorError } from '../../src/errors'
import { formatSize, parseSize } from '../../src/size'
import type { DiskMap } from '../../src/protocol/messages'
import type { StateName } from '../../src/table/table'

const STATES = ['invalid', 'no-write', 'zero', 'error'] as const satisfies readonly StateName[]

export default class ExtentSet extends VstorCommand {
  static override summary = 'Set or clear entry states (invalid, no-write, zero, error) over a range'

  static override description =
    'Set or clear entry states over a range of a disk (edges must be multiples of 1M). invalid: I/O fails with EIO; ' +
    'no-write: writes fail with EROFS; zero: reads return zeros and the range gives back its space; error: I/O fails with EIO. ' +
    'Agents apply the change before the command returns.'

  static override examples = [
    '<%= config.bin %> extent set vm1 --offset 0 --length 1G --set no-write',
    '<%= config.bin %> extent set vm1 --offset 0 --length 1G --clear no-write',
    '<%= config.bin %> extent set vm1 --offset 512M --length 16M --set zero',
    '<%= config.bin %> extent set vm1 --offset 1G --length 1M --set invalid --clear error',
  ]

  static override args = {
    name: Args.string({ description: 'disk name', required: true }),
  }

  static override flags = {
    offset: Flags.string({ helpValue: 'SIZE', description: 'start of the range in the disk (bytes or a size like 512M)', required: true }),
    length: Flags.string({ helpValue: 'SIZE', description: 'length of the range (bytes or a size like 1G)', required: true }),
    set: Flags.option({ description: 'state to set', options: STATES, multiple: true })(),
    clear: Flags.option({ description: 'state to clear', options: STATES, multiple: true })(),
    bytes: Flags.boolean({ description: 'show offsets and sizes in bytes' }),
  }

  async run(): Promise<DiskMap> {
    const { args, flags } = await this.parse(ExtentSet)
    diskName(args.name) // refused here, in the user's terms, before any connection
    const offset = parseSize(flags.offset, '--offset')
    const length = parseSize(flags.length, '--length')
    const set: StateName[] = flags.set ?? []
    const clear: StateName[] = flags.clear ?? []
    if (set.length === 0 && clear.length === 0) throw new VstorError('BAD_ARGUMENT', 'nothing to do: give --set STATE and/or --clear STATE')
    const both = set.filter((s) => clear.includes(s))
    if (both.length) throw new VstorError('BAD_ARGUMENT', `cannot both set and clear ${both.join(', ')}`)
    const map = await (await this.client(flags)).call('extent.set', { name: args.name, offset, length, set, clear })
    const what = [set.length ? `set ${set.join(',')}` : '', clear.length ? `cleared ${clear.join(',')}` : ''].filter(Boolean).join(', ')
    this.log(`disk ${map.name}: ${what} over ${formatSize(length)} at ${formatSize(offset)}`)
    this.log(mapTable(map, flags.bytes, { start: offset, end: offset + length }))
    return map
  }
}
