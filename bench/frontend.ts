// Front-end benchmark: the same pass-through handler (sync pread/pwrite on a backing file, in
// test/agent/frontend/memfs-child.ts) served through Fuse3 (libfuse 3) and fuse-native (libfuse 2),
// both mounted at once, fio jobs interleaved (round by round, job by job, front end by front end,
// the order of the two flipped every round), medians reported. Not part of npm test:
// `node dist/bench/frontend.js [--rounds=5] [--seconds=3]`;
// `--jobs=randwrite` runs the jobs whose label contains that text; VSTOR_BENCH_RAW=1 prints every run;
// `--variant='{"spliceRead":true}'` compares Fuse3 with those Fuse3Options against plain Fuse3.
//
// Invariants: both children and mounts are torn down on success, error and SIGINT; every run uses
// --direct=1 on the FUSE file.

import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { run } from './fio'

const MiB = 2 ** 20
const arg = (name: string, dflt: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt)
const ROUNDS = arg('rounds', 5)
const SECONDS = arg('seconds', 3)
const SIZE = 512 * MiB

interface Job {
  label: string
  args: string[]
  metric: 'IOPS' | 'MB/s'
}
const JOBS: Job[] = [
  { label: '4k randread QD1 psync', args: ['--rw=randread', '--bs=4k', '--ioengine=psync', '--iodepth=1'], metric: 'IOPS' },
  { label: '4k randread QD16 libaio', args: ['--rw=randread', '--bs=4k', '--ioengine=libaio', '--iodepth=16'], metric: 'IOPS' },
  { label: '4k randwrite QD1 psync', args: ['--rw=randwrite', '--bs=4k', '--ioengine=psync', '--iodepth=1'], metric: 'IOPS' },
  { label: '4k randwrite QD16 libaio', args: ['--rw=randwrite', '--bs=4k', '--ioengine=libaio', '--iodepth=16'], metric: 'IOPS' },
  {
    label: '4k randwrite 4 jobs psync',
    args: ['--rw=randwrite', '--bs=4k', '--ioengine=psync', '--numjobs=4', '--group_reporting'],
    metric: 'IOPS',
  },
  { label: '1M seq read QD1 psync', args: ['--rw=read', '--bs=1M', '--ioengine=psync', '--iodepth=1'], metric: 'MB/s' },
  { label: '1M seq write QD1 psync', args: ['--rw=write', '--bs=1M', '--ioengine=psync', '--iodepth=1'], metric: 'MB/s' },
]
const ONLY = process.argv.find((a) => a.startsWith('--jobs='))?.slice('--jobs='.length)
const SELECTED = ONLY ? JOBS.filter((j) => j.label.includes(ONLY)) : JOBS
const VARIANT = process.argv.find((a) => a.startsWith('--variant='))?.slice('--variant='.length)
/** Two servers: [name, front end, Fuse3 options]. */
const SERVERS: [string, 'fuse3' | 'fuse-native', object][] = VARIANT
  ? [
      ['fuse3', 'fuse3', {}],
      ['variant', 'fuse3', JSON.parse(VARIANT) as object],
    ]
  : [
      ['fuse3', 'fuse3', {}],
      ['fuse-native', 'fuse-native', {}],
    ]

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function serve(dir: string, name: string, frontend: string, fuse3: object): Promise<{ mnt: string; child: ChildProcess }> {
  const mnt = path.join(dir, name)
  const backing = path.join(dir, `${name}.backing`)
  fs.mkdirSync(mnt)
  fs.writeFileSync(backing, '')
  await run('dd', ['if=/dev/urandom', `of=${backing}`, 'bs=1M', `count=${SIZE / MiB}`])
  const script = path.join(__dirname, '..', 'test', 'agent', 'frontend', 'memfs-child.js')
  const cfg = {
    mnt,
    frontend,
    files: [{ name: 'disk.img', size: SIZE }],
    backing,
    fuse3,
    options: frontend === 'fuse3' ? undefined : ['allow_other'],
  }
  const child = fork(script, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: { ev: string; message?: string }) =>
      m.ev === 'mounted' ? resolve() : m.ev === 'error' && reject(new Error(m.message)),
    )
    child.on('exit', (c) => reject(new Error(`${frontend} child exited ${c}`)))
  })
  return { mnt, child }
}

async function fio(file: string, job: Job): Promise<number> {
  const out = path.join(os.tmpdir(), `vstor-fe-bench-${process.pid}.json`)
  const r = await run('fio', [
    '--name=b',
    `--filename=${file}`,
    '--direct=1',
    `--size=${SIZE}`,
    '--time_based',
    `--runtime=${SECONDS}`,
    '--ramp_time=0.5',
    '--randrepeat=0',
    '--output-format=json',
    `--output=${out}`,
    ...job.args,
  ])
  if (r.code !== 0) throw new Error(`fio ${job.label}: ${r.stderr}`)
  const j = JSON.parse(fs.readFileSync(out, 'utf8')) as {
    jobs: { read: { iops: number; bw: number }; write: { iops: number; bw: number } }[]
  }
  fs.rmSync(out, { force: true })
  const side = job.args.some((a) => /write/.test(a)) ? j.jobs[0]!.write : j.jobs[0]!.read
  return job.metric === 'IOPS' ? side.iops : (side.bw * 1024) / 1e6
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-fe-bench-'))
  const children: ChildProcess[] = []
  const cleanup = async (): Promise<void> => {
    for (const c of children) c.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    for (const [name] of SERVERS) await run('umount', ['-l', path.join(dir, name)])
    fs.rmSync(dir, { recursive: true, force: true })
  }
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)))
  try {
    const served: Record<string, string> = {}
    for (const [name, frontend, opts] of SERVERS) {
      const s = await serve(dir, name, frontend, opts)
      children.push(s.child)
      served[name] = path.join(s.mnt, 'disk.img')
    }
    const results = new Map<string, number[]>()
    for (let round = 0; round < ROUNDS; round++) {
      for (const job of SELECTED) {
        // Alternate which server goes first, so neither always runs right after the other's job.
        for (const [name] of round % 2 ? [...SERVERS].reverse() : SERVERS) {
          const v = await fio(served[name]!, job)
          if (process.env.VSTOR_BENCH_RAW) process.stderr.write(`${job.label} ${name} ${v.toFixed(0)}\n`)
          const key = `${job.label}|${name}`
          results.set(key, [...(results.get(key) ?? []), v])
        }
      }
      process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`)
    }
    const [a0, b0] = SERVERS.map((s) => s[0])
    console.log(
      `| job | ${a0} | ${b0} | ratio |  (medians of ${ROUNDS} interleaved ${SECONDS}s runs${VARIANT ? `, variant ${VARIANT}` : ''})`,
    )
    console.log('|---|---:|---:|---:|')
    for (const job of SELECTED) {
      const a = median(results.get(`${job.label}|${a0}`)!)
      const b = median(results.get(`${job.label}|${b0}`)!)
      console.log(`| ${job.label} (${job.metric}) | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(a / b).toFixed(2)}x |`)
    }
  } finally {
    await cleanup()
  }
}

void main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
