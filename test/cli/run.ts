// Helpers for the CLI tests: run bin/vstor as a child process (sync, or async
// when the test process itself must keep serving a fake controller).

import { execFile, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** The checkout: dist/test/cli/run.js → ../../.. */
export const ROOT = path.resolve(__dirname, '..', '..', '..')
export const BIN = path.join(ROOT, 'bin', 'vstor')

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** A fresh temp dir with a socket path nothing listens on; removed by the caller. */
export function tempInstance(): { dir: string; socket: string; dataDir: string; env: NodeJS.ProcessEnv } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vstor-cli-'))
  const socket = path.join(dir, 'vstor.sock')
  const dataDir = path.join(dir, 'data')
  return { dir, socket, dataDir, env: { ...process.env, VSTOR_SOCKET: socket, VSTOR_DATA_DIR: dataDir, NODE_ENV: '' } }
}

export function vstor(args: string[], env: NodeJS.ProcessEnv = process.env): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

export function vstorAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}
