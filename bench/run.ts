// Benchmark entry: `npm run bench` (full, ~12 min) or `node dist/bench/run.js --quick` (~3 min).
// Options: --quick, --targets=raw,qsd,fn,js,thick,thin (subset), --no-meta, --moves (only the move
// benchmarks, bench/moves.ts; the full run has them too), --no-moves, --profile (controller and
// agents under node --cpu-prof, top self-time functions in the report), --readme (write the README section).
//
// Invariants:
//   * jobs run interleaved: for each round, for each job, every target in order (a,b,c,d,a,b,c,d…);
//   * the thick disk is served by one agent per front end (thick, js, fn: bench/vstor.ts) through the
//     fio jobs and the verify passes; the js and fn agents are stopped before the meta and move
//     benchmarks, which see one agent as before;
//   * every temp file, mount and process is torn down by Cleanup, on success, error and signals;
//   * the result JSON is written even when some targets failed (their errors are listed in it).

import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { checks } from './compare'
import { isWrite, JOBS, runJob, runVerify } from './fio'
import { runMeta, type MetaResult } from './meta'
import { runMoves } from './moves'
import {
  cell,
  markdown,
  printReport,
  summarizeProfiles,
  updateReadme,
  writeResults,
  type BenchResult,
  type JobResult,
  type Machine,
  type ProfileSummary,
} from './report'
import { Cleanup, ROOT, setupQsd, setupRaw, TARGET_KEYS, type Target, type TargetKey } from './targets'
import { Vstor } from './vstor'

const MiB = 2 ** 20

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]!.trim()
  } catch {
    return `${cmd}: unknown`
  }
}

function machine(): Machine {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    kernel: os.release(),
    fio: version('fio', ['--version']),
    node: process.version,
    qemu: version('qemu-storage-daemon', ['--version']),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAvg: os.loadavg().map((l) => Math.round(l * 100) / 100),
  }
}

interface Options {
  quick: boolean
  keys: TargetKey[]
  meta: boolean
  moves: boolean
  movesOnly: boolean
  profile: boolean
  readme: boolean
}

function parseArgs(argv: string[]): Options {
  const all: TargetKey[] = [...TARGET_KEYS]
  let keys = all
  for (const a of argv) {
    if (a.startsWith('--targets=')) keys = a.slice('--targets='.length).split(',') as TargetKey[]
    else if (!['--quick', '--no-meta', '--moves', '--no-moves', '--profile', '--readme'].includes(a)) throw new Error(`unknown option ${a}`)
  }
  if (keys.some((k) => !all.includes(k))) throw new Error(`--targets takes a subset of ${all.join(',')}`)
  const movesOnly = argv.includes('--moves')
  return {
    quick: argv.includes('--quick'),
    keys: movesOnly ? [] : keys,
    meta: !movesOnly && !argv.includes('--no-meta'),
    moves: movesOnly || !argv.includes('--no-moves'),
    movesOnly,
    profile: argv.includes('--profile'),
    readme: argv.includes('--readme') && !movesOnly,
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2))
  const { quick } = opts
  const size = quick ? 64 * MiB : 1024 * MiB
  const runtime = quick ? 1 : 4
  const rounds = quick ? 2 : 3
  const verifySize = quick ? 32 * MiB : 128 * MiB
  const started = Date.now()
  const log = (s: string): boolean => process.stderr.write(`bench [${((Date.now() - started) / 1000).toFixed(0)}s]: ${s}\n`)

  const cleanup = new Cleanup()
  let interrupted = false
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return
    interrupted = true
    process.stderr.write(`bench: ${sig}, cleaning up\n`)
    void cleanup.run().then(() => process.exit(130))
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal)

  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'vstor-bench-'))
  cleanup.add('temp dir', () => fs.promises.rm(dir, { recursive: true, force: true }))
  const profileDir = opts.profile ? path.join(os.tmpdir(), `vstor-bench-prof-${process.pid}`) : undefined
  const res: BenchResult = {
    date: new Date().toISOString().slice(0, 10),
    mode: quick ? 'quick' : 'full',
    machine: machine(),
    config: { size, runtime, rounds, verifySize },
    jobs: [],
    verify: {},
    meta: null,
    moves: null,
    profile: null,
    errors: [],
  }
  // Runs after the agent exited (it writes its profile on exit) and before the temp dir goes.
  if (profileDir) {
    const summary = (who: string): ProfileSummary => summarizeProfiles(path.join(profileDir, who))
    const whos = ['agent', 'agent-js', 'agent-fn', 'controller']
    cleanup.add(
      'profile summary',
      () =>
        void (res.profile = Object.fromEntries(whos.filter((w) => fs.existsSync(path.join(profileDir, w))).map((w) => [w, summary(w)]))),
    )
  }

  try {
    const targets: Target[] = []
    const want = (k: TargetKey): boolean => opts.keys.includes(k)
    const tryStart = async (what: string, fn: () => Promise<void>): Promise<void> => {
      log(`starting ${what}`)
      try {
        await fn()
      } catch (err) {
        res.errors.push(`${what}: ${(err as Error).message}`)
        log(`${what} did not start: ${(err as Error).message}`)
      }
    }
    if (want('raw')) await tryStart('raw file', async () => void targets.push(await setupRaw(dir, size)))
    if (want('qsd')) await tryStart('qemu-storage-daemon', async () => void targets.push(await setupQsd(dir, size, cleanup)))
    let vstor = null as Vstor | null // set in a closure: no narrowing to null
    if (['fn', 'js', 'thick', 'thin'].some((k) => want(k as TargetKey)) || opts.meta || opts.moves) {
      // moves only: the thick and thin disks stay small (the moves make their own)
      const v = new Vstor({ dir, size: opts.movesOnly ? 64 * MiB : size, spare: 512 * MiB, profileDir }, cleanup)
      await tryStart('vstor', async () => {
        await v.start()
        vstor = v
      })
      // one more agent per front end on the same controller; one that fails leaves the others
      for (const key of ['fn', 'js'] as const) if (vstor && want(key)) await tryStart(`vstor agent for ${key}`, () => v.mount(key))
      if (vstor) targets.push(...v.targets().filter((t) => want(t.key)))
    }
    if (interrupted) return 130

    const jobs: JobResult[] = JOBS.map((j) => ({ id: j.id, label: j.label, metric: j.metric, targets: {} }))
    const runs = new Map<string, { values: number[]; failed: number }>()
    for (let round = 1; round <= rounds; round++) {
      for (const job of JOBS) {
        log(`round ${round}/${rounds}: ${job.label}`)
        for (const t of targets) {
          if (interrupted) return 130
          const slot = runs.get(`${job.id}/${t.key}`) ?? { values: [], failed: 0 }
          runs.set(`${job.id}/${t.key}`, slot)
          try {
            await (isWrite(job) ? t.beforeWrite() : t.beforeRead())
            const r = await runJob(t.file, job, size, runtime)
            if (r.error) slot.failed++
            else slot.values.push(job.metric === 'IOPS' ? r.iops : r.mbps)
          } catch (err) {
            slot.failed++
            res.errors.push(`${job.id} on ${t.key}: ${(err as Error).message}`)
          }
        }
      }
    }
    for (const j of jobs) {
      for (const t of targets) {
        const slot = runs.get(`${j.id}/${t.key}`)
        if (slot) j.targets[t.key] = cell(slot.values, slot.failed)
      }
    }
    res.jobs = jobs

    for (const t of targets) {
      if (interrupted) return 130
      log(`verify pass on ${t.key}`)
      try {
        await t.beforeWrite()
        res.verify[t.key] = await runVerify(t.file, verifySize)
      } catch (err) {
        res.errors.push(`verify on ${t.key}: ${(err as Error).message}`)
      }
    }
    if (vstor && (want('fn') || want('js'))) {
      log('stopping the fn and js agents')
      await vstor.unmountFronts().catch((err: Error) => res.errors.push(`unmount of the fn/js agents: ${err.message}`))
    }

    if (opts.meta) {
      log('metadata benchmarks')
      res.meta = (await runMeta({ vstor, quick, cleanup })) satisfies MetaResult
    }

    if (opts.moves && vstor) {
      log('move benchmarks')
      try {
        res.moves = await runMoves(vstor, dir, quick, log)
      } catch (err) {
        res.moves = { error: (err as Error).message }
        res.errors.push(`moves: ${(err as Error).message}`)
      }
    }
  } finally {
    log('tearing down')
    await cleanup.run()
  }

  if (!opts.movesOnly) res.checks = checks(res)
  const file = writeResults(ROOT, res, opts.movesOnly ? '-moves' : '')
  printReport(res)
  const rel = path.relative(ROOT, file)
  process.stdout.write(
    `\nresults: ${rel}${profileDir ? `, profiles: ${profileDir}` : ''} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`,
  )
  if (opts.readme && !updateReadme(ROOT, markdown(res, rel)))
    process.stderr.write('bench: README.md has no <!-- bench:start -->/<!-- bench:end --> markers\n')
  return res.errors.length ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`)
    process.exit(1)
  },
)
