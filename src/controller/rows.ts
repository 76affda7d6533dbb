// Tables of device ranges (`dirty`, `shared`): rows (device_id, pstart, length, ...) that are
// disjoint per device and may be split anywhere.

import type { Db } from './db'

/** The columns a range table carries besides (device_id, pstart, length). */
const EXTRA = { dirty: '', shared: ', refs' } as const

/**
 * Inside a transaction: `table` no longer covers [start, end) of `device`; a row across an edge
 * keeps its parts outside, with its other columns. Queued writes only (no read), so the caller's
 * transaction stays one script:
 *   1. a row reaching past `end` gets a copy of its part from `end` (rows are disjoint: none starts there);
 *   2. a row starting before `start` ends there;
 *   3. rows starting inside go (the copies from 1 start at `end`, outside).
 */
export async function cutRows(db: Db, table: keyof typeof EXTRA, device: number, start: number, end: number): Promise<void> {
  const x = EXTRA[table]
  await db.queue(
    `INSERT INTO ${table} (device_id, pstart, length${x}) SELECT device_id, ?, pstart + length - ?${x} FROM ${table}
     WHERE device_id = ? AND pstart < ? AND pstart + length > ?`,
    [end, end, device, end, end],
  )
  await db.queue(`UPDATE ${table} SET length = ? - pstart WHERE device_id = ? AND pstart < ? AND pstart + length > ?`, [
    start,
    device,
    start,
    start,
  ])
  await db.queue(`DELETE FROM ${table} WHERE device_id = ? AND pstart >= ? AND pstart < ?`, [device, start, end])
}
