import { Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { jobsTable } from '../../src/cli/format'
import type { JobInfo } from '../../src/protocol/messages'

export default class JobList extends VstorCommand {
  static override summary = 'List jobs (moves, evacuations) with progress'

  static override description =
    'List the long-running jobs (disk move, device evacuate), running or ended, with bytes done, the measured stall per chunk and any error. Jobs survive controller restarts.'

  static override examples = ['<%= config.bin %> job list', '<%= config.bin %> job list --json']

  static override flags = {
    bytes: Flags.boolean({ description: 'show sizes in bytes' }),
  }

  async run(): Promise<JobInfo[]> {
    const { flags } = await this.parse(JobList)
    const jobs = await (await this.client(flags)).call('job.list', {})
    this.log(jobsTable(jobs, flags.bytes))
    return jobs
  }
}
