// Move benchmarks (issue 9), on the bench's running controller and agent:
//   * move throughput on an idle disk (median of a move there and back), as a ratio to dd copying the
//     same bytes between the same two device files (median of 3);
//   * foreground 4k randread QD16 IOPS while a move runs, as a ratio to the seconds before it
//     (one fio run, its IOPS log in 100 ms samples split at the move's start and end);
//   * the stall per chunk (writes held), p50/p99, from the jobs' stats: from when an agent blocked the
//     chunk for the fence to when it applied the switch, on the agent's clock (see jobs/acks.ts).
// Targets: move >= 0.5x dd, foreground >= 0.5x, p99 stall < 50 ms.
//
// The baseline is the copy the move has to do, from cold to durable. Before every dd and every idle
// move both device files are fdatasynced and this host's cached pages of them dropped
// (posix_fadvise DONTNEED through native/blkio, else dd iflag=nocache): the controller reads sources
// fresh (readFresh drops their pages first), so a dd from a warm page cache measured a memory copy
// (2.4 GB/s). dd reads buffered (kernel readahead), writes buffered and ends with conv=fdatasync, so
// its bytes are on the device when it ends, as a chunk's are when the move commits it (it
// fdatasyncs the destination first). A first dd, not counted, writes the destination's blocks
// once: on a thin-provisioned virtual disk the first write of a block is several times slower
// (the old first run, 378 MB/s), and the moves write blocks the file system has had before. The
// foreground run keeps the cache the idle moves left.
//
// Invariants: dd runs before the destination file joins the pool, so both it and the move write into
// a sparse file (the pool punches a new device's data area); a foreground sample counts as "during"
// only when it lies wholly inside the move; every request goes over one socket connection.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { LABEL_AREA } from '../src/config'
import { loadBlkio } from '../src/device/blkio'
import type { DiskMap, JobInfo } from '../src/protocol/messages'
import { prefill, run } from './fio'
import { sleep, waitFor } from './targets'
import type { Vstor } from './vstor'

const MiB = 2 ** 20
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y)
  const m = Math.floor(s.length / 2)
  return s.length === 0 ? 0 : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export interface MoveRun {
  seconds: number
  mbps: number // MB/s (10^6 bytes) over the whole job, from the request to its end
  copyMBps: number | null // the job's own copy rate (copy time only), MiB/s
  chunks: number
  stallP50Ms: number | null
  stallP99Ms: number | null
}
export interface MovesResult {
  size: number
  ddMBps: number // median of ddRuns
  ddRuns: number[] // each cold to durable (see the top)
  ddFirstMBps: number // the uncounted first run
  idle: MoveRun // median MB/s (and seconds, copy rate) of idleRuns, their worse stalls
  idleRuns: MoveRun[]
  beforeIops: number[]
  duringIops: number[]
  loaded: MoveRun // the move that ran under the foreground reads
  moveRatio: number
  foregroundRatio: number
  stallP99Ms: number // the worse of the two moves
}

/**
 * 4k randread QD16 on `file` with fio's IOPS log (100 ms samples): `beforeMs` of it alone, then `action`
 * (a move) with it running; returns the samples of both windows (the first 500 ms of fio left out).
 */
async function foreground(
  file: string,
  size: number,
  logDir: string,
  beforeMs: number,
  action: () => Promise<void>,
): Promise<{ before: number[]; during: number[] }> {
  const prefix = path.join(logDir, 'foreground')
  const args = ['--name=fg', `--filename=${file}`, '--rw=randread', '--bs=4k', '--ioengine=libaio', '--iodepth=16', '--direct=1']
  args.push(`--size=${size}`, '--time_based', '--runtime=3600', '--randrepeat=0', `--write_iops_log=${prefix}`, '--log_avg_msec=100')
  const child = spawn('fio', [...args, '--output=/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 1)))
  let moveStart = 0
  let moveEnd = 0
  let stop = 0
  try {
    await sleep(beforeMs + 500)
    moveStart = performance.now()
    await action()
    moveEnd = performance.now()
  } finally {
    stop = performance.now()
    child.kill('SIGINT')
  }
  const code = await exited
  const text = await fs.promises.readFile(`${prefix}_iops.1.log`, 'utf8').catch(() => '')
  const samples = text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(',').map(Number) as [number, number])
  if (samples.length === 0) throw new Error(`fio randread during the move logged nothing (exit ${code}): ${stderr.trim()}`)
  // fio's clock starts when its job does: align its last sample with the SIGINT
  const t0 = stop - samples[samples.length - 1]![0]
  const within = (a: number, b: number): number[] => samples.filter(([ms]) => t0 + ms - 100 >= a && t0 + ms <= b).map(([, iops]) => iops)
  return { before: within(t0 + 500, moveStart), during: within(moveStart, moveEnd) }
}

/** Make the files' bytes durable and drop this host's cached pages of them: the next read goes to the device. */
async function dropCache(files: string[]): Promise<void> {
  const blk = loadBlkio()
  for (const f of files) {
    const fh = await fs.promises.open(f, 'r+')
    try {
      await fh.datasync() // DONTNEED drops clean pages only
      if (blk) blk.dropCache(fh.fd, 0, 0)
    } finally {
      await fh.close()
    }
    if (!blk) {
      const dd = await run('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none'])
      if (dd.code !== 0) throw new Error(`dd iflag=nocache on ${f} failed: ${dd.stderr.trim()}`)
    }
  }
}

/** Move the whole disk and wait for the job's end. */
async function move(v: Vstor, disk: string, to: string): Promise<MoveRun> {
  const conn = await v.client()
  const t0 = performance.now()
  const job = await conn.call('disk.move', { name: disk, to })
  const j: JobInfo = await conn.call('job.wait', { id: job.id })
  const end = performance.now()
  if (j.state !== 'done') throw new Error(`move of ${disk} to ${to} ${j.state}: ${j.error ?? ''}`)
  const seconds = (end - t0) / 1000
  return {
    seconds,
    mbps: j.total / 1e6 / seconds,
    copyMBps: j.stats.copyMBps,
    chunks: j.stats.chunks,
    stallP50Ms: j.stats.stallP50Ms,
    stallP99Ms: j.stats.stallP99Ms,
  }
}

export async function runMoves(v: Vstor, dir: string, quick: boolean, log: (s: string) => void): Promise<MovesResult> {
  const size = quick ? 256 * MiB : 1024 * MiB
  const conn = await v.client()
  const a = path.join(dir, 'move-a.img')
  const b = path.join(dir, 'move-b.img')
  for (const f of [a, b]) {
    await fs.promises.writeFile(f, '')
    await fs.promises.truncate(f, size + 64 * MiB)
  }
  await conn.call('device.add', { path: a, name: 'mvA' })
  await conn.call('disk.create', { name: 'mv', size, devices: ['mvA'] })
  const img = v.image('mv')
  if (!(await waitFor(async () => (await fs.promises.stat(img).catch(() => null))?.size === size, 10_000)))
    throw new Error(`${img} did not appear`)
  log(`moves: prefill ${size / MiB} MiB`)
  await prefill(img, size)
  await run('sync', [], 600_000) // the prefill's writeback must not slow down the first dd or move

  // dd between the same two files: the disk's bytes on A to where the move will put them on B.
  const map: DiskMap = await conn.call('disk.map', { name: 'mv' })
  const src = map.extents[0]!
  if (map.extents.length !== 1 || src.deviceOffset === null) throw new Error(`disk mv is not one extent: ${JSON.stringify(map)}`)
  // three runs, each cold into a freshly sparse file: the median is the baseline (this host's fdatasync varies a lot)
  const ddRuns: number[] = []
  for (let i = 0; i <= 3; i++) {
    log(`moves: dd baseline ${i ? `${i}/3` : '(first, not counted)'}`)
    await fs.promises.truncate(b, 0)
    await fs.promises.truncate(b, size + 64 * MiB)
    await dropCache([a, b])
    const args = [`if=${a}`, `of=${b}`, 'bs=4M', `skip=${src.deviceOffset}`, `seek=${LABEL_AREA}`, `count=${size}`]
    args.push('iflag=skip_bytes,count_bytes', 'oflag=seek_bytes', 'conv=notrunc,fdatasync')
    const t0 = performance.now()
    const dd = await run('dd', args, 600_000)
    if (dd.code !== 0) throw new Error(`dd failed: ${dd.stderr.trim()}`)
    ddRuns.push(size / 1e6 / ((performance.now() - t0) / 1000))
  }
  const ddFirstMBps = ddRuns.shift()!
  const ddMBps = median(ddRuns)

  await conn.call('device.add', { path: b, name: 'mvB' })
  // the pool punches B's data area first: wait, so the move does not wait for it
  await waitFor(async () => (await conn.call('device.list', {})).find((d) => d.name === 'mvB')?.scrubbing === 0, 60_000, 100)

  log('moves: idle moves A -> B -> A')
  const idleRuns: MoveRun[] = []
  for (const to of ['mvB', 'mvA']) {
    await dropCache([a, b]) // as cold as dd
    idleRuns.push(await move(v, 'mv', to))
  }
  const idleMBps = median(idleRuns.map((r) => r.mbps))
  const worst = (xs: (number | null)[]): number | null => (xs.some((x) => x === null) ? null : Math.max(...(xs as number[])))
  const idle: MoveRun = {
    seconds: median(idleRuns.map((r) => r.seconds)),
    mbps: idleMBps,
    copyMBps: median(idleRuns.map((r) => r.copyMBps ?? 0)),
    chunks: idleRuns[0]!.chunks,
    stallP50Ms: worst(idleRuns.map((r) => r.stallP50Ms)),
    stallP99Ms: worst(idleRuns.map((r) => r.stallP99Ms)),
  }

  log('moves: foreground 4k randread QD16 before and during a move A -> B')
  let loaded: MoveRun | undefined
  const fg = await foreground(img, size, dir, quick ? 2000 : 4000, async () => void (loaded = await move(v, 'mv', 'mvB')))
  if (fg.during.length < 3 || fg.before.length < 3)
    throw new Error(`too few foreground samples: ${fg.before.length} before, ${fg.during.length} during`)
  const beforeIops = fg.before
  const duringIops = fg.during

  const stalls = [idle.stallP99Ms ?? Infinity, loaded!.stallP99Ms ?? Infinity]
  return {
    size,
    ddMBps,
    ddRuns,
    ddFirstMBps,
    idle,
    idleRuns,
    beforeIops,
    duringIops,
    loaded: loaded!,
    moveRatio: idle.mbps / ddMBps,
    foregroundRatio: median(duringIops) / median(beforeIops),
    stallP99Ms: Math.max(...stalls),
  }
}

const f = (x: number | null, d = 1): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d))

export function movesLines(m: MovesResult | { error: string } | null): string[] {
  if (!m) return ['moves: not run']
  if ('error' in m) return [`moves: FAILED (${m.error})`]
  const mib = m.size / MiB
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED')
  return [
    `move of an idle ${mib} MiB disk between two device files: ${f(m.idle.mbps, 0)} MB/s in ${f(m.idle.seconds, 2)} s, median of 2 ` +
      `(copy alone ${f(m.idle.copyMBps, 0)} MiB/s, ${m.idle.chunks} chunks); dd between the same files, cold to durable, ${f(m.ddMBps, 0)} MB/s (median of 3): ` +
      `${f(m.moveRatio, 2)}x — target >= 0.5x: ${verdict(m.moveRatio >= 0.5)}`,
    `foreground 4k randread QD16 during a move: ${f(median(m.duringIops), 0)} IOPS (${m.duringIops.length} samples of 100 ms) vs ${f(median(m.beforeIops), 0)} ` +
      `before: ${f(m.foregroundRatio, 2)}x (that move: ${f(m.loaded.mbps, 0)} MB/s) — target >= 0.5x: ${verdict(m.foregroundRatio >= 0.5)}`,
    `stall per chunk (writes held): idle p50 ${f(m.idle.stallP50Ms)} ms p99 ${f(m.idle.stallP99Ms)} ms (worse of 2); under reads p50 ` +
      `${f(m.loaded.stallP50Ms)} ms p99 ${f(m.loaded.stallP99Ms)} ms — target p99 < 50 ms: ${verdict(m.stallP99Ms < 50)}`,
  ]
}
