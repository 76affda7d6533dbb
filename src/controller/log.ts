// One line per event on stdout, prefixed with the ISO time. When the
// controller runs detached, stdout is appended to <data-dir>/controller.log.

export function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`)
}
