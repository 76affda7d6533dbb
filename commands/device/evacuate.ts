import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { jobBar, jobLine, waitJob } from '../../src/cli/jobs'
import type { JobInfo } from '../../src/protocol/messages'

export default class DeviceEvacuate extends VstorCommand {
  static override summary = 'Move every extent off a device, to retire it'

  static override description =
    'Move every extent off the device while its disks stay in use, as a job (see `vstor disk move`). Nothing new is allocated on the ' +
    'device meanwhile (device list shows it evacuating); when the job is done it is evacuated and `vstor device remove` succeeds. ' +
    'Prints the job id; --wait shows progress until it is done.'

  static override examples = ['<%= config.bin %> device evacuate old0', '<%= config.bin %> device evacuate old0 --to ssd0 --to ssd1 --wait']

  static override args = {
    name: Args.string({ description: 'device name', required: true }),
  }

  static override flags = {
    to: Flags.string({
      helpValue: 'DEVICE',
      description: 'move only to these devices (default: any other healthy device)',
      multiple: true,
    }),
    wait: Flags.boolean({ description: 'show progress and wait until the job is done (exit 1 if it fails)' }),
  }

  async run(): Promise<JobInfo> {
    const { args, flags } = await this.parse(DeviceEvacuate)
    const bar = jobBar(`evacuating ${args.name}`, this.jsonEnabled())
    const client = await this.client(flags, bar.onNote)
    const job = await client.call('device.evacuate', { name: args.name, ...(flags.to ? { to: flags.to } : {}) })
    if (!flags.wait) {
      bar.stop()
      this.log(`started job ${job.id}: evacuating device ${args.name}; follow it with \`vstor job wait ${job.id}\``)
      return job
    }
    const done = await waitJob(client, job.id, bar.stop)
    this.log(jobLine(done))
    return done
  }
}
