import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import type { DeviceInfo } from '../../src/protocol/messages'

export default class DeviceCheck extends VstorCommand {
  static override summary = 'Check a device and clear its error health when it works'

  static override description =
    'Re-read the label of the device, read and write back its label block and flush it. When that works, a device marked ' +
    'health=error (after a device-error fault) is healthy again and new space may come from it. Extents marked error stay so ' +
    'until `vstor extent set NAME --offset O --length L --clear error`.'

  static override examples = ['<%= config.bin %> device check ssd0']

  static override args = {
    name: Args.string({ description: 'device name', required: true }),
  }

  async run(): Promise<DeviceInfo> {
    const { args, flags } = await this.parse(DeviceCheck)
    const d = await (await this.client(flags)).call('device.check', { name: args.name })
    this.log(`device ${d.name} passed its check: label ${d.uuid} read, I/O works, health ${d.health}`)
    return d
  }
}
