// Progress bars for long operations whose progress can be measured (bytes or
// steps done out of a known total). Invariant: nothing is drawn unless stderr
// is a TTY and the command is not in --json mode, so scripts and logs stay clean.
// Used by `disk create --zero`, fed by the controller's 'progress' notes.

import cliProgress from 'cli-progress'

export interface Progress {
  update(done: number): void
  stop(): void
}

const quiet: Progress = { update: () => {}, stop: () => {} }

/** A bar from 0 to total on stderr, or a no-op when it should not be drawn. */
export function progress(label: string, total: number, opts: { json?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr
  if (opts.json || !process.stdout.isTTY || !stream.isTTY || total <= 0) return quiet
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% ({value}/{total})`, stream, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  )
  bar.start(total, 0)
  return { update: (done) => bar.update(Math.min(done, total)), stop: () => bar.stop() }
}
