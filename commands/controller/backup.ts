import { Args } from '@oclif/core'
import { VstorCommand } from '../../src/cli/base'
import { formatSize } from '../../src/size'

export default class ControllerBackup extends VstorCommand {
  static override summary = 'Copy the database online, consistently'

  static override description =
    "Write a consistent copy of the controller's database to FILE while it runs (SQLite's backup API; the copy is checked with " +
    'quick_check and replaces FILE only when complete). To restore: stop the controller, copy FILE to <data-dir>/vstor.db, ' +
    'remove vstor.db-wal and vstor.db-shm, start it again; agents reload their tables on reconnect.'

  static override examples = ['<%= config.bin %> controller backup /backup/vstor-$(date +%F).db']

  static override args = {
    file: Args.string({ description: 'where to write the copy (mode 0600)', required: true }),
  }

  async run(): Promise<{ path: string; bytes: number }> {
    const { args, flags } = await this.parse(ControllerBackup)
    const r = await (await this.client(flags)).call('controller.backup', { path: args.file })
    this.log(`backed up the database to ${r.path} (${formatSize(r.bytes)})`)
    return r
  }
}
