import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { formatSize } from '../../src/size'
import path from 'node:path'
import type { DeviceInfo } from '../../src/protocol/messages'

export default class DeviceAdd extends VstorCommand {
  static override summary = 'Add a file or block device to the pool'

  static override description =
    'Add a backing device (a regular file or a block device) to the pool. vstor writes a label into its first 1 MiB; data starts after it.'

  static override examples = [
    '<%= config.bin %> device add /dev/sdb',
    '<%= config.bin %> device add /srv/pool0.img --name pool0',
    'truncate -s 100G /srv/pool1.img && <%= config.bin %> device add /srv/pool1.img',
  ]

  static override args = {
    path: Args.string({ description: 'path of the file or block device', required: true }),
  }

  static override flags = {
    name: Flags.string({ helpValue: 'NAME', description: 'name of the device in vstor (default: chosen by the controller from the path)' }),
  }

  async run(): Promise<DeviceInfo> {
    const { args, flags } = await this.parse(DeviceAdd)
    const client = await this.client(flags)
    // The controller opens the path itself, so send it absolute.
    const dev = await client.call('device.add', { path: path.resolve(args.path), ...(flags.name ? { name: flags.name } : {}) })
    this.log(`added device ${dev.name}: ${dev.path} (${dev.kind}), ${formatSize(dev.capacity)} usable of ${formatSize(dev.size)}`)
    return dev
  }
}
