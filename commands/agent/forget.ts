import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import type { AgentInfo } from '../../src/protocol/messages'

export default class AgentForget extends VstorCommand {
  static override summary = 'Declare an agent gone for good (fence it)'

  static override description =
    'Declare an agent gone: its epoch rises, so if it comes back it is refused and fails its I/O with EIO; the disks it had open ' +
    'and the space it could still write no longer wait for it. Make sure the host is really down or its mount is gone first ' +
    '(as with STONITH): a forgotten agent that is alive but unreachable keeps serving mapped I/O with its old table until it reconnects.'

  static override examples = ['<%= config.bin %> agent forget host1:/mnt/vstor']

  static override args = {
    id: Args.string({ description: 'agent id (see `vstor agent list`)', required: true }),
  }

  async run(): Promise<AgentInfo> {
    const { args, flags } = await this.parse(AgentForget)
    const a = await (await this.client(flags)).call('agent.forget', { id: args.id })
    this.log(`forgot agent ${a.id} (epoch now ${a.epoch}); if it reconnects it is refused`)
    return a
  }
}
