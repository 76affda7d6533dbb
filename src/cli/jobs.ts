// Waiting for a job from the CLI: a progress bar from the controller's notes,
// then the outcome. Invariant: a job that did not end 'done' is an error
// (JOB_FAILED, exit 1; its message says why and what to do), so scripts can
// trust `vstor ... --wait` and `vstor job wait` exit codes.

import { VstorError } from '../errors'
import type { JobInfo } from '../protocol/messages'
import { formatSize } from '../size'
import type { Client, Note } from './base'
import { progress, type Progress } from './progress'

/** A note handler drawing the bar, and a stop for it. */
export function jobBar(label: string, json: boolean): { onNote: (n: Note) => void; stop: () => void } {
  let bar: Progress | undefined
  return {
    onNote: (n) => {
      if (n.method !== 'progress') return
      bar ??= progress(label, n.params.total, { json })
      bar.update(n.params.done)
    },
    stop: () => bar?.stop(),
  }
}

/** Wait for the job to end; throw JOB_FAILED unless it is done. */
export async function waitJob(client: Client, id: number, stop: () => void): Promise<JobInfo> {
  let j: JobInfo
  try {
    j = await client.call('job.wait', { id })
  } finally {
    stop()
  }
  if (j.state !== 'done') {
    throw new VstorError(
      'JOB_FAILED',
      `job ${j.id} (${j.kind} ${j.disk ?? j.device ?? ''}) ${j.state}${j.error ? `: ${j.error}` : ''}; what it moved stays moved: run it again to finish`,
    )
  }
  return j
}

export function jobLine(j: JobInfo): string {
  const stall = j.stats.stallP50Ms === null ? '' : `, stall per chunk p50 ${j.stats.stallP50Ms} ms p99 ${j.stats.stallP99Ms} ms`
  return `job ${j.id} (${j.kind} ${j.disk ?? j.device ?? ''}): ${j.state}, ${formatSize(j.done)} of ${formatSize(j.total)}${stall}`
}
