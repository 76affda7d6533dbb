// The entry states of a table extent (claims 2-5, 17-23), written once for
// the table, its codec and its checks (this file imports nothing, so every
// table module can use it without an import cycle).

export const enum Flag {
  Invalid = 1, // no usable mapping: I/O fails (EIO), agent sends an `unmapped` fault
  NoWrite = 2, // an admin's write protection: reads pass; writes fault `write-protected`, answered EROFS
  Zero = 4, // reads return zeros, no device I/O; first write faults `unallocated`
  Error = 8, // the device failed here: I/O fails (EIO)
  Shared = 16, // the units may be mapped by other disks too (snapshots, clones): reads pass; a write faults `write-protected` and is copied on write
}
export const ALL_FLAGS = 31
/** Writes fault here: the admin's no-write, or shared units that must be copied first. */
export const WRITE_PROTECTED = 2 | 16
export const NO_DEVICE = -1

/** The states an admin sets and clears (`vstor extent set`); Shared is the controller's own. */
export type StateName = 'invalid' | 'no-write' | 'zero' | 'error'
export const STATE_FLAGS: Record<StateName, Flag> = {
  invalid: Flag.Invalid,
  'no-write': Flag.NoWrite,
  zero: Flag.Zero,
  error: Flag.Error,
}
