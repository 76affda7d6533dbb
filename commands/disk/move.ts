import { Args, Flags } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { diskName } from '../../src/cli/ids'
import { jobBar, jobLine, waitJob } from '../../src/cli/jobs'
import { VstorError } from '../../src/errors'
import { parseSize } from '../../src/size'
import type { JobInfo } from '../../src/protocol/messages'

export default class DiskMove extends VstorCommand {
  static override summary = 'Move a disk (or a range of it) to another device while it is in use'

  static override description =
    "Move the disk's data in the range to DEVICE while the disk stays in use (like LVM's pvmove). It runs as a job, 16 to 64 MiB at a time: " +
    'writes to the chunk being copied wait (reads go on), every agent must apply each switch before the next chunk, and the old space ' +
    "is freed once they did. If an agent does not answer within the controller's --agent-timeout the job fails naming it; nothing is lost " +
    'and running the move again finishes it. Prints the job id; --wait shows progress until it is done.'

  static override examples = [
    '<%= config.bin %> disk move vm1 --to ssd1',
    '<%= config.bin %> disk move vm1 --to ssd1 --offset 0 --length 10G --wait',
  ]

  static override args = {
    name: Args.string({ description: 'disk name', required: true }),
  }

  static override flags = {
    to: Flags.string({ helpValue: 'DEVICE', description: 'device to move to', required: true }),
    offset: Flags.string({ helpValue: 'OFFSET', description: 'start of the range (a multiple of 1M; default 0)' }),
    length: Flags.string({ helpValue: 'LENGTH', description: 'length of the range (a multiple of 1M; default: to the end)' }),
    wait: Flags.boolean({ description: 'show progress and wait until the job is done (exit 1 if it fails)' }),
  }

  async run(): Promise<JobInfo> {
    const { args, flags } = await this.parse(DiskMove)
    diskName(args.name) // refused here, in the user's terms, before any connection
    const offset = flags.offset === undefined ? undefined : parseSize(flags.offset, '--offset')
    const length = flags.length === undefined ? undefined : parseSize(flags.length, '--length')
    if (length === 0) throw new VstorError('BAD_SIZE', '--length must be above 0')
    const bar = jobBar(`moving ${args.name}`, this.jsonEnabled())
    const client = await this.client(flags, bar.onNote)
    const job = await client.call('disk.move', {
      name: args.name,
      to: flags.to,
      ...(offset !== undefined ? { offset } : {}),
      ...(length !== undefined ? { length } : {}),
    })
    if (!flags.wait) {
      bar.stop()
      this.log(`started job ${job.id}: moving disk ${args.name} to ${flags.to}; follow it with \`vstor job wait ${job.id}\``)
      return job
    }
    const done = await waitJob(client, job.id, bar.stop)
    this.log(jobLine(done))
    return done
  }
}
