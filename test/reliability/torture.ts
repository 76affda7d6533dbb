// `npm run torture`: the reliability cycles, longer (VSTOR_TORTURE=1: 300
// controller kills, 30 agent kills, 3000 fsync races), then one table of the
// figures every test reported (cycles, writes, fsyncs, stale bytes, lost
// writes). Not a test itself; exits with the test run's status.
//
// Invariant: the figures come only from tests that ran to their end (each
// appends its line after its last assertion), so a failed run prints what
// completed and exits non-zero.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Figures } from './writers'

const FILES = ['controller-kill.test.js', 'agent-kill.test.js', 'fsync.test.js']
const COLUMNS = ['cycles', 'writes', 'fsyncs', 'failedWrites', 'staleBytes', 'lostFsynced', 'lostAcked'] as const

function table(rows: Figures[]): string {
  const head = ['test', ...COLUMNS]
  const cells = rows.map((r) => [r.test, ...COLUMNS.map((c) => String(r[c] ?? 0))])
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)))
  const line = (c: string[]) => '| ' + c.map((x, i) => (i === 0 ? x.padEnd(width[i]!) : x.padStart(width[i]!))).join(' | ') + ' |'
  return [
    line(head),
    '| ' + width.map((w, i) => (i === 0 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ') + ' |',
    ...cells.map(line),
  ].join('\n')
}

async function main(): Promise<number> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-torture-')), 'figures.jsonl')
  fs.writeFileSync(out, '')
  const started = Date.now()
  const files = FILES.map((f) => path.join(__dirname, f))
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
    stdio: 'inherit',
    env: { ...process.env, VSTOR_TORTURE: '1', VSTOR_FIGURES: out, CI: process.env.CI ?? 'true' },
  })
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)))
  const rows = fs
    .readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Figures)
  fs.rmSync(path.dirname(out), { recursive: true, force: true })
  const minutes = ((Date.now() - started) / 60_000).toFixed(1)
  console.log(
    `\nvstor torture: ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, kernel ${os.release()}, node ${process.version}, ${minutes} min, tests ${code === 0 ? 'passed' : 'FAILED'}\n`,
  )
  console.log(table(rows))
  return code
}

void main().then((code) => process.exit(code))
