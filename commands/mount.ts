import { Args, Flags } from '@oclif/core'
import fs from 'node:fs/promises'
import path from 'node:path'
import { VstorCommand } from '../src/cli/base'
import { parseDuration } from '../src/size'
import { parseFrontend } from '../src/agent/frontend/index'
import type { IoMode } from '../src/agent/store'
import { parseMode, resolveId } from '../src/cli/ids'

export default class Mount extends VstorCommand {
  static override summary = 'Serve every disk as MOUNTPOINT/NAME.img (starts an agent)'

  static override description =
    'Start an agent that serves every virtual disk as MOUNTPOINT/NAME.img (a FUSE mount). Reads and writes go straight to the backing ' +
    'devices through its copy of the extent table. Detaches once the images are visible, unless --foreground. ' +
    'The controller is reached on the socket, or on another host with --controller HOST:PORT --tls-dir DIR.'

  static override examples = [
    '<%= config.bin %> mount /mnt/vstor',
    '<%= config.bin %> mount /mnt/vstor --agent-id host1 --fault-timeout 30s',
    '<%= config.bin %> mount /mnt/vstor --foreground',
    '<%= config.bin %> mount /mnt/vstor --io async',
    '<%= config.bin %> mount /mnt/vstor --gid kvm --mode 0660',
    '<%= config.bin %> mount /mnt/vstor --scan "/dev/disk/by-id/*" --scan "/srv/pool/*.img"',
    '<%= config.bin %> mount /mnt/vstor --controller 198.18.0.1:7420 --tls-dir /etc/vstor/tls',
  ]

  static override args = {
    mountpoint: Args.string({ description: 'an empty directory to mount on', required: true }),
  }

  static override flags = {
    foreground: Flags.boolean({ description: 'run the agent in this process until SIGTERM or `vstor unmount`' }),
    'agent-id': Flags.string({
      helpValue: 'ID',
      description: 'name of this agent at the controller (default: derived from host and mountpoint)',
    }),
    'fault-timeout': Flags.string({
      description: 'how long I/O that needs the controller waits for it before failing with EIO',
      helpValue: 'DURATION',
      default: '60s',
    }),
    io: Flags.string({
      description:
        'device I/O mode: sync runs reads and writes inline on the agent thread (fastest; a hung device stalls the agent), ' +
        'async uses a thread pool (a hung device stalls only its own I/O)',
      options: ['sync', 'async'],
      default: 'sync',
    }),
    scan: Flags.string({
      description: "where to look for pool devices by their label when the controller's path does not hold them (repeatable)",
      helpValue: 'GLOB',
      multiple: true,
      default: ['/dev/disk/by-id/*'],
    }),
    uid: Flags.string({ description: 'owner of the images: a user name or number', helpValue: 'USER', default: '0' }),
    gid: Flags.string({ description: 'group of the images: a group name or number, e.g. kvm', helpValue: 'GROUP', default: '0' }),
    mode: Flags.string({
      description: 'permission bits of the images, octal (the kernel enforces them)',
      helpValue: 'MODE',
      default: '0600',
    }),
    fuse: Flags.string({
      description:
        'FUSE front end: libfuse3 (native/fuse3, the default when bin/setup built it: concurrent libaio direct I/O, 1 MiB requests, ' +
        'fallocate, SEEK_DATA/SEEK_HOLE, mapped I/O in its worker threads) or fuse-native (libfuse 2: the fallback, without those)',
      options: ['libfuse3', 'fuse-native'],
    }),
  }

  async run(): Promise<{ pid: number; mountpoint: string; images: string[] } | undefined> {
    const { args, flags } = await this.parse(Mount)
    const mountpoint = path.resolve(args.mountpoint)
    const opts = {
      mountpoint,
      socket: this.paths(flags).socket,
      controller: this.tcpAddress(flags) ?? undefined,
      faultTimeoutMs: parseDuration(flags['fault-timeout'], '--fault-timeout'),
      io: flags.io as IoMode,
      scan: flags.scan,
      uid: resolveId(flags.uid, '/etc/passwd', '--uid'),
      gid: resolveId(flags.gid, '/etc/group', '--gid'),
      mode: parseMode(flags.mode),
      ...(flags.fuse ? { fuse: parseFrontend(flags.fuse) } : {}),
      ...(flags['agent-id'] ? { agentId: flags['agent-id'] } : {}),
    }
    const agent = await import('../src/agent/index.js')
    if (flags.foreground) {
      // The detached start re-runs this command with --foreground in a child; it signals readiness itself.
      await agent.runAgent(opts)
      return undefined
    }
    const { pid } = await agent.startAgentDetached(opts)
    const images = (await fs.readdir(mountpoint)).filter((f) => f.endsWith('.img')).map((f) => path.join(mountpoint, f))
    this.log(`agent started (pid ${pid}), ${mountpoint} serves ${images.length} disk image${images.length === 1 ? '' : 's'}`)
    for (const img of images) this.log(`  ${img}`)
    const example = images[0] ?? path.join(mountpoint, 'NAME.img')
    this.log('use them as raw disks, e.g.:')
    this.log(`  losetup -f --show ${example}`)
    this.log(`  qemu-system-x86_64 -drive file=${example},format=raw,cache=none`)
    this.log(`stop with: vstor unmount ${mountpoint}`)
    return { pid, mountpoint, images }
  }
}
