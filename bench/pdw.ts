// What FOPEN_PARALLEL_DIRECT_WRITES gives (issue 10: libfuse 3.14 has no fuse_file_info field for it,
// so native/fuse3 writes fuse_open_out itself; on by default, VSTOR_PARALLEL_DIRECT_WRITES=0 drops it).
// `node dist/bench/pdw.js [--quick]`: one controller, one thick disk, two libfuse3 agents on it, one
// without the flag (serial) and one with it (thick, the default); direct writes from several threads to one file,
// where the kernel otherwise serializes them on the inode lock, and libaio QD16 from one thread for
// contrast. Jobs run interleaved (for each round, each job, serial then thick); medians are printed
// with the ratio thick/serial, and written to bench/results/DATE-pdw.json.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fio } from './fio'
import { Cleanup, ROOT } from './targets'
import { Vstor, type FrontKey } from './vstor'

const MiB = 2 ** 20

interface Job {
  id: string
  args: (size: number) => string[]
  metric: 'IOPS' | 'MB/s'
}
const JOBS: Job[] = [
  { id: '4k randwrite psync 4 threads', metric: 'IOPS', args: () => ['--rw=randwrite', '--bs=4k', '--ioengine=psync', '--numjobs=4'] },
  { id: '64k randwrite psync 4 threads', metric: 'MB/s', args: () => ['--rw=randwrite', '--bs=64k', '--ioengine=psync', '--numjobs=4'] },
  {
    id: '1M write psync 4 threads',
    metric: 'MB/s',
    args: (size) => ['--rw=write', '--bs=1M', '--ioengine=psync', '--numjobs=4', `--offset_increment=${size / 4}`],
  },
  {
    id: '4k randwrite libaio QD16 1 thread',
    metric: 'IOPS',
    args: () => ['--rw=randwrite', '--bs=4k', '--ioengine=libaio', '--iodepth=16'],
  },
]

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

async function main(): Promise<number> {
  const quick = process.argv.includes('--quick')
  const size = quick ? 64 * MiB : 512 * MiB
  const runtime = quick ? 1 : 4
  const rounds = quick ? 1 : 3
  const cleanup = new Cleanup()
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup.run().then(() => process.exit(130)))
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-pdw-'))
  cleanup.add('temp dir', () => fs.promises.rm(dir, { recursive: true, force: true }))
  const results: Record<string, Record<string, number[]>> = {}
  try {
    const v = new Vstor({ dir, size, spare: 0 }, cleanup)
    await v.start()
    await v.mount('serial')
    const keys: FrontKey[] = ['serial', 'thick']
    for (let r = 1; r <= rounds; r++) {
      for (const job of JOBS) {
        for (const key of keys) {
          const jobSize = job.id.startsWith('1M') ? size / 4 : size
          const { json, code, stderr } = await fio(
            [
              `--name=pdw`,
              `--filename=${v.image('thick', key)}`,
              '--direct=1',
              `--size=${jobSize}`,
              `--runtime=${runtime}`,
              '--time_based',
              '--group_reporting',
              '--randrepeat=0',
              ...job.args(size),
            ],
            (runtime + 60) * 1000,
          )
          const w = json?.jobs[0]?.write
          if (code !== 0 || !w) throw new Error(`fio ${job.id} on ${key} failed: ${stderr.trim()}`)
          const value = job.metric === 'IOPS' ? w.iops : w.bw_bytes / 1e6
          ;((results[job.id] ??= {})[key] ??= []).push(value)
          process.stderr.write(`pdw: round ${r} ${job.id} ${key}: ${value.toFixed(0)} ${job.metric}\n`)
        }
      }
    }
  } finally {
    await cleanup.run()
  }
  const rows = JOBS.map((job) => {
    const t = median(results[job.id]!.serial!)
    const p = median(results[job.id]!.thick!)
    return { job: job.id, metric: job.metric, without: Math.round(t), with: Math.round(p), ratio: Math.round((p / t) * 100) / 100 }
  })
  const lines = ['| job | without | with | with / without |', '|---|---:|---:|---:|']
  for (const r of rows) lines.push(`| ${r.job} | ${r.without} ${r.metric} | ${r.with} ${r.metric} | ${r.ratio.toFixed(2)}× |`)
  process.stdout.write(lines.join('\n') + '\n')
  if (!quick) {
    const out = path.join(ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-pdw.json`)
    fs.writeFileSync(out, JSON.stringify({ kernel: os.release(), size, runtime, rounds, rows, raw: results }, null, 2) + '\n')
  }
  return 0
}

main().then(
  (rc) => process.exit(rc),
  (err: Error) => {
    process.stderr.write(`pdw: ${err.stack ?? err.message}\n`)
    process.exit(1)
  },
)
