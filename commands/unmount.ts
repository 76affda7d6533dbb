import { Args } from '@oclif/core'
import path from 'node:path'
import { VstorCommand } from '../src/cli/base'

export default class Unmount extends VstorCommand {
  static override summary = 'Stop the agent serving MOUNTPOINT and unmount it'

  static override description =
    'Stop the agent serving MOUNTPOINT and remove the mount. Fails while images are in use: close them and `losetup -d` their loop devices first. ' +
    'A dead mount (its agent was killed: the mount answers ENOTCONN) is removed too, and the command says so (--json: dead is true).'

  static override examples = ['<%= config.bin %> unmount /mnt/vstor']

  static override args = {
    mountpoint: Args.string({ description: 'the mountpoint given to `vstor mount`', required: true }),
  }

  async run(): Promise<{ unmounted: true; mountpoint: string; dead: boolean }> {
    const { args, flags } = await this.parse(Unmount)
    const mountpoint = path.resolve(args.mountpoint)
    const agent = await import('../src/agent/index.js')
    // Delegated: the agent module finds the pid file, stops the agent and cleans a dead mount.
    const { dead } = await agent.unmountAgent(mountpoint, this.paths(flags).socket)
    if (dead) this.log(`the agent for ${mountpoint} was not running; removed its dead mount`)
    else this.log(`unmounted ${mountpoint}`)
    return { unmounted: true, mountpoint, dead }
  }
}
