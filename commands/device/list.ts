import { Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { devicesTable } from '../../src/cli/format'
import type { DeviceInfo } from '../../src/protocol/messages'

export default class DeviceList extends VstorCommand {
  static override summary = 'List devices with capacity, use and health'

  static override description = 'List the backing devices of the pool with their capacity, use and health.'

  static override examples = [
    '<%= config.bin %> device list',
    '<%= config.bin %> device list --bytes',
    '<%= config.bin %> device list --json',
  ]

  static override flags = {
    bytes: Flags.boolean({ description: 'show sizes in bytes' }),
  }

  async run(): Promise<DeviceInfo[]> {
    const { flags } = await this.parse(DeviceList)
    const devices = await (await this.client(flags)).call('device.list', {})
    this.log(devicesTable(devices, flags.bytes))
    return devices
  }
}
