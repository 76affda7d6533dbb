// A real Linux guest for the end-to-end tests: a Debian kernel and a busybox
// initramfs built from Debian packages (never installed on the host), booted
// under qemu TCG on a raw image.
//
// Invariants:
// - Everything built lives in `${VSTOR_TEST_CACHE:-/var/cache/vstor-test}/guest/`;
//   downloaded .debs are kept in debs/ and reused; vmlinuz/initrd.gz are rebuilt
//   when missing or when test/guest/init.sh (or this builder's version) changed.
//   Outputs are renamed into place, so a killed build never leaves a half file.
// - Modules go into the initramfs uncompressed, in dependency order (read from
//   each module's .modinfo `depends=`), listed in /lib/modules/load-order.
// - A boot always ends: qemu is SIGKILLed after its timeout and in t.after, and
//   the result carries the console so a failed boot says why.
// The disk layout used by the tasks is documented in test/guest/init.sh and
// mirrored by GUEST_REGIONS below.

import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { sh, shOk } from './proc'

const MiB = 2 ** 20
const BUILD_VERSION = 1
/** Modules the guest needs; their dependencies are added in load order. */
const ROOT_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4']

export const GUEST_DISK_SIZE = 64 * MiB
/** Size of the ext2 made by the write task, from offset 0. */
export const GUEST_FS_SIZE = 32 * MiB
export const GUEST_HELLO = 'hello from the vstor guest'

export interface GuestRegion {
  name: string
  offset: number
  length: number
  /** Every byte of the region, or undefined for the text region (see guestText). */
  byte?: number
}

/** The regions the write task fills, as in test/guest/init.sh. */
export const GUEST_REGIONS: GuestRegion[] = [
  { name: 'text', offset: 40 * MiB + 512, length: 588890 },
  { name: 'a5', offset: 48 * MiB, length: 65536, byte: 0xa5 },
  { name: '3c', offset: 52 * MiB + 4096, length: 135168, byte: 0x3c },
  { name: '69', offset: 56 * MiB - 8192, length: 16384, byte: 0x69 },
  { name: 'e7', offset: 64 * MiB - 65536, length: 65536, byte: 0xe7 },
]

/** The bytes of the text region: `seq -w 0 99999 | head -c 588890`. */
export function guestText(): Buffer {
  const lines: string[] = []
  for (let i = 0; i <= 99999; i++) lines.push(String(i).padStart(5, '0') + '\n')
  return Buffer.from(lines.join('')).subarray(0, 588890)
}

/** md5 of /mnt/numbers.txt as the guest writes it: `seq 1 200000`. */
export function guestNumbersMd5(): string {
  const lines: string[] = []
  for (let i = 1; i <= 200000; i++) lines.push(`${i}\n`)
  return crypto.createHash('md5').update(lines.join('')).digest('hex')
}

export function guestCacheDir(): string {
  return path.join(process.env.VSTOR_TEST_CACHE || '/var/cache/vstor-test', 'guest')
}

export interface GuestImage {
  kernel: string
  initrd: string
}

/** Tools the guest needs on the host; empty when all are there. */
export async function guestMissingTools(): Promise<string[]> {
  const tools = ['qemu-system-x86_64', 'qemu-io', 'apt-get', 'dpkg', 'cpio', 'gzip', 'xz']
  const missing: string[] = []
  for (const t of tools) if ((await sh('sh', ['-c', `command -v ${t}`])).code !== 0) missing.push(t)
  return missing
}

/** The kernel and initramfs, built (and cached) on first use. */
export async function buildGuest(): Promise<GuestImage> {
  const dir = guestCacheDir()
  const kernel = path.join(dir, 'vmlinuz')
  const initrd = path.join(dir, 'initrd.gz')
  const stampFile = path.join(dir, 'stamp.json')
  const init = fs.readFileSync(repoFile('test/guest/init.sh'))
  const stamp = JSON.stringify({ version: BUILD_VERSION, init: crypto.createHash('sha256').update(init).digest('hex') })
  if (fs.existsSync(kernel) && fs.existsSync(initrd) && readOr(stampFile) === stamp) return { kernel, initrd }

  const debs = path.join(dir, 'debs')
  fs.mkdirSync(debs, { recursive: true })
  const kernelDeb = await debFile(debs, /^linux-image-[0-9][^_]*-amd64_.*\.deb$/, kernelPackage)
  const busyboxDeb = await debFile(debs, /^busybox-static_.*\.deb$/, async () => 'busybox-static')

  const work = fs.mkdtempSync(path.join(dir, 'build-'))
  try {
    const pkg = path.join(work, 'pkg')
    const root = path.join(work, 'root')
    await shOk('dpkg', ['-x', kernelDeb, pkg])
    await shOk('dpkg', ['-x', busyboxDeb, pkg])
    for (const d of ['bin', 'dev', 'proc', 'sys', 'mnt', 'tmp', 'lib/modules']) fs.mkdirSync(path.join(root, d), { recursive: true })
    fs.copyFileSync(path.join(pkg, 'bin/busybox'), path.join(root, 'bin/busybox'))
    fs.writeFileSync(path.join(root, 'init'), init, { mode: 0o755 })
    const order = await copyModules(pkg, path.join(root, 'lib/modules'))
    fs.writeFileSync(path.join(root, 'lib/modules/load-order'), order.join('\n') + '\n')
    await shOk('sh', ['-c', 'find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > ../initrd.gz'], { cwd: root })
    fs.copyFileSync(vmlinuz(pkg), path.join(work, 'vmlinuz'))
    fs.renameSync(path.join(work, 'vmlinuz'), kernel)
    fs.renameSync(path.join(work, 'initrd.gz'), initrd)
    fs.writeFileSync(stampFile, stamp)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  return { kernel, initrd }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

/** Find a file of the repository above dist/test/helpers (or above the working directory). */
function repoFile(rel: string): string {
  for (const start of [__dirname, process.cwd()]) {
    for (let d = start; d !== path.dirname(d); d = path.dirname(d)) {
      const p = path.join(d, rel)
      if (fs.existsSync(p)) return p
    }
  }
  throw new Error(`cannot find ${rel} above ${__dirname} or ${process.cwd()}`)
}

/** A cached .deb matching re, else apt-get download of the package `name()` gives. */
async function debFile(dir: string, re: RegExp, name: () => Promise<string>): Promise<string> {
  const have = () => fs.readdirSync(dir).find((f) => re.test(f))
  let file = have()
  if (file) return path.join(dir, file)
  // Only run apt-get update when the lists are missing or stale (a lookup or download fails).
  let pkg = await name().catch(() => '')
  const r = pkg ? await sh('apt-get', ['download', pkg], { cwd: dir, timeoutMs: 600_000 }) : undefined
  if (!r || r.code !== 0) {
    await shOk('apt-get', ['update'], { timeoutMs: 600_000 })
    pkg = await name()
    await shOk('apt-get', ['download', pkg], { cwd: dir, timeoutMs: 600_000 })
  }
  file = have()
  if (!file) throw new Error(`apt-get download ${pkg} left no file matching ${re} in ${dir}`)
  return path.join(dir, file)
}

/** The versioned kernel package linux-image-amd64 depends on (e.g. linux-image-6.1.0-56-amd64). */
async function kernelPackage(): Promise<string> {
  const r = await shOk('apt-cache', ['depends', 'linux-image-amd64'])
  const m = /Depends: (linux-image-[0-9]\S*-amd64)\b/.exec(r.stdout)
  if (!m?.[1]) throw new Error(`apt-cache depends linux-image-amd64 names no kernel package:\n${r.stdout}`)
  return m[1]
}

function vmlinuz(pkg: string): string {
  const f = fs.readdirSync(path.join(pkg, 'boot')).find((n) => n.startsWith('vmlinuz-'))
  if (!f) throw new Error('the kernel package has no /boot/vmlinuz-*')
  return path.join(pkg, 'boot', f)
}

/** Copy ROOT_MODULES and their dependencies, uncompressed; returns the load order. */
async function copyModules(pkg: string, dest: string): Promise<string[]> {
  const base = path.join(pkg, 'lib/modules')
  const version = fs.readdirSync(base)[0]
  if (!version) throw new Error('the kernel package has no lib/modules/<version>')
  const files = new Map<string, string>()
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.ko(\.xz)?$/.test(e.name)) files.set(modName(e.name), p)
    }
  }
  walk(path.join(base, version, 'kernel'))
  const builtin = new Set(
    readOr(path.join(base, version, 'modules.builtin'))
      .split('\n')
      .map((l) => modName(path.basename(l))),
  )

  const order: string[] = []
  const seen = new Set<string>()
  const visit = async (name: string): Promise<void> => {
    if (seen.has(name)) return
    seen.add(name)
    const file = files.get(name)
    if (!file) {
      if (builtin.has(name)) return
      throw new Error(`kernel ${version} has no module ${name}`)
    }
    const data = file.endsWith('.xz') ? await xzDecompress(file) : fs.readFileSync(file)
    for (const dep of modDepends(data)) await visit(dep)
    fs.writeFileSync(path.join(dest, `${name}.ko`), data)
    order.push(name)
  }
  for (const m of ROOT_MODULES) await visit(m)
  return order
}

function modName(file: string): string {
  return file.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_')
}

/** The `depends=` entry of a module's .modinfo section. */
function modDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=')
  if (at < 0) return []
  const start = at + '\0depends='.length
  const text = ko.subarray(start, ko.indexOf(0, start)).toString()
  return text.split(',').filter(Boolean).map(modName)
}

function xzDecompress(file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('xz', ['-dc', file], { stdio: ['ignore', 'pipe', 'inherit'] })
    const out: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`xz -dc ${file} exited ${code}`))))
  })
}

export interface BootOptions {
  /** Raw image for /dev/vda. */
  drive: string
  /** vstor.task on the kernel command line: write, check or hang. */
  task: string
  timeoutMs?: number
}

export interface BootResult {
  /** Everything qemu printed (serial console and its own messages). */
  console: string
  /** VSTOR-* marker lines, without the prefix and trimmed (e.g. 'OK pattern a5'). */
  markers: string[]
  /** Wall-clock seconds from spawn to exit. */
  seconds: number
}

/** Boot the guest once; resolves when it powered off, rejects (with the console) on timeout or failure. */
export async function bootGuest(t: { after(fn: () => unknown): void }, guest: GuestImage, opts: BootOptions): Promise<BootResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000
  const args = [
    ...['-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot', '-nic', 'none', '-kernel', guest.kernel, '-initrd', guest.initrd],
    ...['-append', `console=ttyS0 quiet panic=-1 vstor.task=${opts.task}`],
    ...['-drive', `file=${opts.drive.replace(/,/g, ',,')},format=raw,if=virtio,cache=none,aio=threads`],
  ]
  const started = Date.now()
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const out: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => out.push(b))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, timeoutMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('error', (e) => {
      out.push(Buffer.from(`\n${String(e)}\n`))
      resolve([127, null])
    })
    child.on('close', (c, s) => resolve([c, s]))
  }).finally(() => clearTimeout(timer))
  const text = Buffer.concat(out).toString().replace(/\r/g, '')
  // A marker may follow firmware output on the same line (no newline after "Booting from ROM..").
  const markers = text
    .split('\n')
    .map((l) => /VSTOR-(.*)$/.exec(l)?.[1]?.trim())
    .filter((m): m is string => m !== undefined)
  const tail = () => `\n--- guest console (last 3000 chars) ---\n${text.slice(-3000)}\n---`
  const what = `guest task '${opts.task}' on ${opts.drive}`
  if (timedOut) throw new Error(`${what} did not power off within ${timeoutMs / 1000} s (killed)${tail()}`)
  if (code !== 0) throw new Error(`${what}: qemu exited ${code ?? signal}${tail()}`)
  const failed = markers.find((m) => m.startsWith('FAIL'))
  if (failed) throw new Error(`${what} reported ${failed}${tail()}`)
  if (!markers.includes(`DONE ${opts.task}`)) throw new Error(`${what} ended without DONE (did it boot?)${tail()}`)
  return { console: text, markers, seconds: (Date.now() - started) / 1000 }
}
