// Page-cache coherence for devices other hosts write too (an agent on another host than the
// controller, a shared LUN). On one host the controller and its agents share one page cache, so
// nothing here runs; a remote agent (`--controller`) does this at every table change, before it
// acks it:
//   * the devices the old mapping of the range used are fdatasync'ed, so what this host wrote is
//     on the device before the controller copies it (a move's fence, a snapshot) or hands the
//     space to another disk;
//   * this host's cached pages of device ranges the disk no longer maps, or maps anew, are
//     dropped, so a later read goes to the device and never returns bytes from before the change
//     (the controller zeroed or copied them through another host).

import { subtractDeviceRanges } from '../table/arrays'
import { NO_DEVICE, type Extent } from '../table/table'
import type { Store } from './store'

export type StoreOf = (device: number) => Store | undefined

function sync(store: Store): Promise<void> {
  return new Promise((resolve, reject) => store.sync((err) => (err ? reject(err) : resolve())))
}

/** One range of one disk changed from `before` to `after` (both tiling it). */
export async function settleChange(storeOf: StoreOf, before: Extent[], after: Extent[]): Promise<void> {
  const used = new Set(before.filter((e) => e.device !== NO_DEVICE).map((e) => e.device))
  for (const id of used) {
    const s = storeOf(id)
    if (s) await sync(s)
  }
  for (const e of [...subtractDeviceRanges(before, after), ...subtractDeviceRanges(after, before)])
    storeOf(e.device)?.dropCache?.(e.pstart, e.length)
}

/** A whole copy replaced (table.load): sync every device and forget everything cached. */
export async function settleAll(stores: Store[]): Promise<void> {
  for (const s of stores) {
    await sync(s)
    s.dropCache?.(0, 0)
  }
}
