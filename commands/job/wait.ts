import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { jobBar, jobLine, waitJob } from '../../src/cli/jobs'
import type { JobInfo } from '../../src/protocol/messages'

export default class JobWait extends VstorCommand {
  static override summary = 'Wait for a job to end (progress bar), then show the outcome'

  static override description =
    'Wait until the job ends, with a progress bar on a terminal. Exits 0 when it is done, 1 when it failed or was cancelled (the message says why).'

  static override examples = ['<%= config.bin %> job wait 3']

  static override args = {
    id: Args.integer({ description: 'job id (see `vstor job list`)', required: true, min: 1 }),
  }

  async run(): Promise<JobInfo> {
    const { args, flags } = await this.parse(JobWait)
    const bar = jobBar(`job ${args.id}`, this.jsonEnabled())
    const j = await waitJob(await this.client(flags, bar.onNote), args.id, bar.stop)
    this.log(jobLine(j))
    return j
  }
}
