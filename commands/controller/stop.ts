import { VstorCommand } from '../../src/cli/base'

export default class ControllerStop extends VstorCommand {
  static override summary = 'Stop the controller'

  static override description =
    'Stop the controller and wait until it has exited (its database closed). Mounted agents keep serving mapped I/O and reconnect when a controller is back.'

  static override examples = ['<%= config.bin %> controller stop', 'VSTOR_SOCKET=/tmp/vs/vstor.sock <%= config.bin %> controller stop']

  async run(): Promise<{ stopped: true; socket: string }> {
    const { flags } = await this.parse(ControllerStop)
    const { socket } = this.paths(flags)
    const controller = await import('../../src/controller/index.js')
    // Delegated: stopController asks over the socket and waits for the process (and so its database) to go.
    await controller.stopController(socket)
    this.log(`controller stopped (socket ${socket})`)
    return { stopped: true, socket }
  }
}
