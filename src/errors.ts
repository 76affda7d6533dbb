// One typed error for every failure vstor reports. Errors cross each
// boundary once: an errno at FUSE, {code, message} on the wire, an exit code
// in the CLI. The code is the contract; the message says what failed and
// what to do about it.

export const ErrorCodes = {
  // Bad input from a user or a peer (exit 1).
  BAD_ARGUMENT: 1, // a flag or argument is malformed or out of range
  BAD_SIZE: 1, // a size could not be parsed or is not allowed
  BAD_NAME: 1, // a disk or device name is not allowed
  NOT_FOUND: 1, // no disk or device by that name
  EXISTS: 1, // a disk or device by that name exists already
  NO_SPACE: 1, // the pool has not enough free space
  DEVICE_INVALID: 1, // path missing, a directory, not a file or block device
  DEVICE_TOO_SMALL: 1, // smaller than the label area plus one unit
  DEVICE_LABELLED: 1, // carries a vstor label already
  DEVICE_IN_USE: 1, // block device opened exclusively elsewhere
  DEVICE_MISMATCH: 1, // the path carries another label than the device's uuid
  DEVICE_BUSY: 1, // extents still use the device
  DISK_OPEN: 1, // an agent has the disk open
  MOUNT_FAILED: 1, // the FUSE mount could not be made
  NOT_MOUNTED: 1, // no vstor agent serves that mountpoint
  MOUNT_BUSY: 1, // files on the mount are still open (loop devices, VMs)
  JOB_NOT_FOUND: 1, // no job with that id
  JOB_FAILED: 1, // a job ended failed or cancelled (its message says why)
  READ_ONLY: 1, // the disk is a read-only snapshot
  AGENT_UNRESPONSIVE: 3, // an agent that holds the disk did not apply a change in time
  FENCED: 3, // the agent was forgotten by an admin: its epoch is stale
  // Protocol (the peer sent something wrong).
  BAD_FRAME: 1, // a frame could not be decoded
  FRAME_TOO_LARGE: 1, // a frame is over the size limit
  BAD_REQUEST: 1, // a message lacks fields or has wrong types
  UNKNOWN_METHOD: 1, // no handler for that method
  PROTOCOL_VERSION: 1, // the peer speaks another protocol version
  // The environment (exit 3).
  CONTROLLER_UNREACHABLE: 3, // nothing answers on the socket or at HOST:PORT, or no permission to use the socket
  TLS_REFUSED: 3, // the controller did not accept this host's certificate
  TLS_UNTRUSTED: 3, // the controller's certificate failed this host's check (CA, dates, name/IP)
  OPENSSL_FAILED: 3, // the openssl command is missing or failed (vstor tls init/issue)
  CONTROLLER_RUNNING: 1, // a controller answers on the socket already
  START_FAILED: 3, // a daemon did not come up
  TIMEOUT: 3, // a peer did not answer in time
  CLOSED: 3, // the connection closed with a request pending
  DB_CORRUPT: 4, // the SQLite file is damaged or not ours
  DB_VERSION: 4, // the SQLite file is from a newer vstor
  INTERNAL: 4, // a bug: report it
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class VstorError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'VstorError'
    this.code = code
  }

  /** Exit code for the CLI: 1 user error, 2 usage (oclif), 3 environment, 4 internal. */
  get exitCode(): number {
    return ErrorCodes[this.code]
  }

  toWire(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message }
  }

  static fromWire(e: unknown): VstorError {
    if (e && typeof e === 'object') {
      const { code, message } = e as { code?: unknown; message?: unknown }
      if (typeof code === 'string' && code in ErrorCodes && typeof message === 'string') {
        return new VstorError(code as ErrorCode, message)
      }
    }
    return new VstorError('BAD_FRAME', 'the peer sent a malformed error')
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && x in ErrorCodes
}

/** Wrap anything thrown into a VstorError, keeping VstorErrors as they are. */
export function toVstorError(e: unknown): VstorError {
  if (e instanceof VstorError) return e
  const msg = e instanceof Error ? e.message : String(e)
  return new VstorError('INTERNAL', msg)
}
