import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import type { DeviceInfo } from '../../src/protocol/messages'

export default class DeviceRemove extends VstorCommand {
  static override summary = 'Remove an unused device from the pool'

  static override description = 'Remove a device from the pool. Refused while extents of any disk still use it.'

  static override examples = ['<%= config.bin %> device remove pool0']

  static override args = {
    name: Args.string({ description: 'device name (see `vstor device list`)', required: true }),
  }

  async run(): Promise<DeviceInfo> {
    const { args, flags } = await this.parse(DeviceRemove)
    const dev = await (await this.client(flags)).call('device.remove', { name: args.name })
    this.log(`removed device ${dev.name} (${dev.path})`)
    return dev
  }
}
