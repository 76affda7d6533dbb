import { VstorCommand } from '../../src/cli/base'
import { agentsTable } from '../../src/cli/format'
import type { AgentInfo } from '../../src/protocol/messages'

export default class AgentList extends VstorCommand {
  static override summary = 'List the agents the controller knows, connected or not'

  static override description =
    'List every agent that took a table from the controller and has not been forgotten: connected or not, its epoch, ' +
    'the generation it applied, its FUSE front end, the disks it reports open and the pool devices it cannot find. ' +
    'A disconnected agent still counts: it may serve mapped I/O with its last table, so moves, resizes and freed space wait for it.'

  static override examples = ['<%= config.bin %> agent list', '<%= config.bin %> agent list --json']

  async run(): Promise<AgentInfo[]> {
    const { flags } = await this.parse(AgentList)
    const agents = await (await this.client(flags)).call('agent.list', {})
    this.log(agentsTable(agents))
    return agents
  }
}
