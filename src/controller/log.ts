// One line per event on stdout, prefixed with the ISO time. When the
// controller runs detached, stdout is appended to <data-dir>/controller.log.
//
// Invariants: lines with the same key (by default the message itself) are
// written at most LIMIT times per WINDOW_MS; the rest of that window is
// counted, and one line "… repeated K more times: <last one>" follows when
// the window closes. So a flood (10k bad connections) cannot flood the log,
// every kind of event still shows, and the counter map only holds keys seen
// in the current window.

export const LIMIT = 10
export const WINDOW_MS = 1_000

interface Window {
  since: number
  n: number
  dropped: number
  last: string
}

const windows = new Map<string, Window>()
let timer: NodeJS.Timeout | null = null

function write(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`)
}

function close(key: string, w: Window): void {
  windows.delete(key)
  if (w.dropped > 0) write(`… repeated ${w.dropped} more time${w.dropped === 1 ? '' : 's'}: ${w.last}`)
}

/** Close the windows that are over; stop ticking when none is left. */
function sweep(now = Date.now()): void {
  for (const [key, w] of windows) if (now - w.since >= WINDOW_MS) close(key, w)
  if (windows.size === 0 && timer) {
    clearInterval(timer)
    timer = null
  }
}

/** Log a line; `key` groups lines that differ only in details (ids, numbers) for the rate limit. */
export function log(message: string, key: string = message): void {
  const now = Date.now()
  let w = windows.get(key)
  if (w && now - w.since >= WINDOW_MS) {
    close(key, w)
    w = undefined
  }
  if (!w) {
    w = { since: now, n: 0, dropped: 0, last: '' }
    windows.set(key, w)
    if (!timer) {
      timer = setInterval(() => sweep(), WINDOW_MS)
      timer.unref()
    }
  }
  if (++w.n <= LIMIT) return write(message)
  w.dropped++
  w.last = message
}

/** Write the pending "repeated" lines now (at stop). */
export function flushLog(): void {
  sweep(Infinity)
}
