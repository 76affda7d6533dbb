// Shared builders for the table tests.
import { NO_DEVICE, type Extent } from '../../src/table/table'

export const M = 2 ** 20
export const ext = (vstart: number, length: number, device = NO_DEVICE, pstart = 0, flags = 0): Extent => ({
  vstart,
  length,
  device,
  pstart,
  flags,
})
