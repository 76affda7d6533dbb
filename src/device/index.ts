// The device layer's public API: open a backing device (file or block device) by path with a
// label check, do I/O and space operations on it, read/write/wipe labels, find devices by label.
// Invariant: agent and controller import devices only from here (internals may change).

export { openDevice, IO_MODES, type Device, type IoCallback, type IoMode, type OpenOptions } from './device'
export {
  decodeLabel,
  encodeLabel,
  LABEL_MAGIC,
  LABEL_SIZE,
  probe,
  readLabel,
  readLabelFd,
  UNREADABLE,
  wipeLabel,
  writeLabel,
  type Label,
  type Probe,
} from './label'
export { scanLabels } from './scan'
export { expandGlob, expandGlobs } from './glob'
export type { DeviceKind } from './stat'
