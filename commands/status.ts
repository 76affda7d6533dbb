import { Flags } from '@oclif/core'
import { VstorCommand } from '../src/cli/base'
import { statusText } from '../src/cli/format'
import type { Status } from '../src/protocol/messages'

export default class StatusCommand extends VstorCommand {
  static override summary = 'Show controller, agents, disks and devices'

  static override description =
    'Show the controller (generation, socket, database), the agents with the generation they applied and when their table was last replaced, the disks and the devices.'

  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json | jq .controller.generation']

  static override flags = {
    bytes: Flags.boolean({ description: 'show sizes in bytes' }),
  }

  async run(): Promise<Status> {
    const { flags } = await this.parse(StatusCommand)
    const status = await (await this.client(flags)).call('status', {})
    this.log(statusText(status, flags.bytes))
    return status
  }
}
