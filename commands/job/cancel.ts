import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import type { JobInfo } from '../../src/protocol/messages'

export default class JobCancel extends VstorCommand {
  static override summary = 'Cancel a running job at its next chunk'

  static override description =
    'Cancel a running job. It stops at its next chunk boundary: the chunk in progress is undone (its old mapping and states come back), what was moved before stays moved.'

  static override examples = ['<%= config.bin %> job cancel 3']

  static override args = {
    id: Args.integer({ description: 'job id (see `vstor job list`)', required: true, min: 1 }),
  }

  async run(): Promise<JobInfo> {
    const { args, flags } = await this.parse(JobCancel)
    const j = await (await this.client(flags)).call('job.cancel', { id: args.id })
    this.log(j.state === 'running' ? `job ${j.id} will stop at its next chunk` : `job ${j.id} has already ended (${j.state})`)
    return j
  }
}
