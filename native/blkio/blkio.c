// blkio: the few Linux calls that Node has no binding for: on an fd, for src/device, and one on
// the calling thread, for src/priority.ts.
//
//   fallocate(fd, mode, offset, length, cb)   fallocate(2); mode: FALLOC_FL_* bits exported here
//   zeroout(fd, offset, length, cb)           ioctl BLKZEROOUT (block devices)
//   discard(fd, offset, length, cb)           ioctl BLKDISCARD (block devices; does not promise zeros)
//   writeBehind(fd, offset, length, cb)       sync_file_range(SYNC_FILE_RANGE_WRITE): start writeback, not waiting for it
//   blockSize64(fd) -> number                 ioctl BLKGETSIZE64 (sync)
//   seekData(fd, offset) / seekHole(fd, offset) -> number   lseek SEEK_DATA / SEEK_HOLE (sync; -1 for ENXIO)
//   dropCache(fd, offset, length)                          posix_fadvise DONTNEED (sync; length 0: to the end)
//   checkOffset(value) -> bigint              the argument check offsets go through (for tests)
//   realtime(on, tid)                         thread tid (0: the calling one) to SCHED_FIFO 1 (reset on fork) or back to SCHED_OTHER (sync)
//
// Invariants:
//   * async calls run on the libuv thread pool (napi_async_work) and call cb exactly once, with
//     null or a Node-style Error {code: 'ENOSPC', errno: -28, syscall}; the JS thread never
//     waits on the device;
//   * offsets and lengths are numbers that are integers in [0, 2^53 - 1] (checked as doubles,
//     then read with napi_get_value_int64, so 2^44 and 2^50 arrive exactly); anything else
//     throws synchronously (TypeError / RangeError with code ERR_INVALID_ARG_TYPE /
//     ERR_OUT_OF_RANGE) and cb is never called;
//   * the addon never opens or closes an fd: the caller keeps it open until cb has run.

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <math.h>
#include <sched.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_SAFE 9007199254740991.0 // 2^53 - 1
#define MODE_BITS (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)

enum op { OP_FALLOCATE, OP_ZEROOUT, OP_DISCARD, OP_WRITE_BEHIND };
static const char *const SYSCALL[] = {"fallocate", "ioctl(BLKZEROOUT)", "ioctl(BLKDISCARD)", "sync_file_range"};

typedef struct {
  napi_async_work work;
  napi_ref cb;
  enum op op;
  int fd;
  int mode;
  int64_t offset;
  int64_t length;
  int err; // errno of the call, 0 on success
} req_t;

// ---- errors -------------------------------------------------------------------------------

static void throw_arg(napi_env env, bool type, const char *fmt, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, fmt, what);
  if (type)
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  else
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/** A Node-style errno error: message "ENOSPC: no space left on device, fallocate", code, errno < 0, syscall. */
static napi_value errno_error(napi_env env, int e, const char *syscall) {
  const char *name = strerrorname_np(e);
  if (name == NULL) name = "EIO";
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(e), syscall);
  napi_value code, message, err, errnum, sc;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_int32(env, -e, &errnum);
  napi_set_named_property(env, err, "errno", errnum);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  return err;
}

// ---- arguments ----------------------------------------------------------------------------

/** An integer in [0, 2^53 - 1]; false (with an exception pending) otherwise. */
static bool get_offset(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_arg(env, true, "%s must be a number", what);
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0) || d > MAX_SAFE || floor(d) != d) {
    throw_arg(env, false, "%s must be an integer in [0, 2^53 - 1]", what);
    return false;
  }
  napi_get_value_int64(env, v, out);
  return true;
}

static bool get_int(napi_env env, napi_value v, const char *what, int *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_arg(env, true, "%s must be a number", what);
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0) || d > 2147483647.0 || floor(d) != d) {
    throw_arg(env, false, "%s must be an integer in [0, 2^31 - 1]", what);
    return false;
  }
  *out = (int)d;
  return true;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    char n[8];
    snprintf(n, sizeof n, "%zu", want);
    throw_arg(env, true, "expected %s arguments", n);
    return false;
  }
  return true;
}

// ---- async calls --------------------------------------------------------------------------

static void execute(napi_env env, void *data) {
  (void)env;
  req_t *r = data;
  int rc;
  do {
    if (r->op == OP_FALLOCATE) {
      rc = fallocate(r->fd, r->mode, (off_t)r->offset, (off_t)r->length);
    } else if (r->op == OP_WRITE_BEHIND) {
      // start writeback of the range's dirty pages, not waiting for it: a later fdatasync finds it done or under way
      rc = sync_file_range(r->fd, (off_t)r->offset, (off_t)r->length, SYNC_FILE_RANGE_WRITE);
    } else {
      uint64_t range[2] = {(uint64_t)r->offset, (uint64_t)r->length};
      rc = ioctl(r->fd, r->op == OP_ZEROOUT ? BLKZEROOUT : BLKDISCARD, range);
    }
  } while (rc < 0 && errno == EINTR);
  r->err = rc < 0 ? errno : 0;
}

static void complete(napi_env env, napi_status status, void *data) {
  req_t *r = data;
  napi_value cb, undef, arg;
  napi_get_reference_value(env, r->cb, &cb);
  napi_get_undefined(env, &undef);
  int e = status == napi_cancelled ? ECANCELED : r->err;
  if (e)
    arg = errno_error(env, e, SYSCALL[r->op]);
  else
    napi_get_null(env, &arg);
  // Free everything before running JS: the callback may throw (an uncaught exception, as for fs callbacks).
  napi_delete_reference(env, r->cb);
  napi_delete_async_work(env, r->work);
  free(r);
  napi_call_function(env, undef, cb, 1, &arg, NULL);
}

static napi_value start(napi_env env, enum op op, int fd, int mode, int64_t offset, int64_t length, napi_value cb) {
  napi_valuetype t;
  if (napi_typeof(env, cb, &t) != napi_ok || t != napi_function) {
    throw_arg(env, true, "%s must be a function", "cb");
    return NULL;
  }
  req_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw(env, errno_error(env, ENOMEM, SYSCALL[op]));
    return NULL;
  }
  r->op = op;
  r->fd = fd;
  r->mode = mode;
  r->offset = offset;
  r->length = length;
  napi_value name;
  napi_create_string_utf8(env, SYSCALL[op], NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, cb, 1, &r->cb);
  if (napi_create_async_work(env, NULL, name, execute, complete, r, &r->work) != napi_ok ||
      napi_queue_async_work(env, r->work) != napi_ok) {
    napi_delete_reference(env, r->cb);
    free(r);
    napi_throw_error(env, "ERR_BLKIO", "could not queue the request on the thread pool");
    return NULL;
  }
  return NULL;
}

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd, mode;
  int64_t offset, length;
  if (!get_args(env, info, 5, argv) || !get_int(env, argv[0], "fd", &fd) || !get_int(env, argv[1], "mode", &mode) ||
      !get_offset(env, argv[2], "offset", &offset) || !get_offset(env, argv[3], "length", &length))
    return NULL;
  if (mode & ~MODE_BITS) {
    throw_arg(env, false, "%s has bits other than FALLOC_FL_KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE", "mode");
    return NULL;
  }
  return start(env, OP_FALLOCATE, fd, mode, offset, length, argv[4]);
}

static napi_value range_op(napi_env env, napi_callback_info info, enum op op) {
  napi_value argv[4];
  int fd;
  int64_t offset, length;
  if (!get_args(env, info, 4, argv) || !get_int(env, argv[0], "fd", &fd) || !get_offset(env, argv[1], "offset", &offset) ||
      !get_offset(env, argv[2], "length", &length))
    return NULL;
  return start(env, op, fd, 0, offset, length, argv[3]);
}

static napi_value js_zeroout(napi_env env, napi_callback_info info) { return range_op(env, info, OP_ZEROOUT); }
static napi_value js_discard(napi_env env, napi_callback_info info) { return range_op(env, info, OP_DISCARD); }
static napi_value js_write_behind(napi_env env, napi_callback_info info) { return range_op(env, info, OP_WRITE_BEHIND); }

// ---- sync calls ---------------------------------------------------------------------------

static napi_value js_block_size64(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
    napi_throw(env, errno_error(env, errno, "ioctl(BLKGETSIZE64)"));
    return NULL;
  }
  napi_create_double(env, (double)size, &out);
  return out;
}

static napi_value seek(napi_env env, napi_callback_info info, int whence) {
  napi_value argv[2], out;
  int fd;
  int64_t offset;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "fd", &fd) || !get_offset(env, argv[1], "offset", &offset))
    return NULL;
  off_t at = lseek(fd, (off_t)offset, whence);
  if (at < 0 && errno != ENXIO) {
    napi_throw(env, errno_error(env, errno, whence == SEEK_DATA ? "lseek(SEEK_DATA)" : "lseek(SEEK_HOLE)"));
    return NULL;
  }
  napi_create_double(env, at < 0 ? -1.0 : (double)at, &out);
  return out;
}

static napi_value js_seek_data(napi_env env, napi_callback_info info) { return seek(env, info, SEEK_DATA); }
static napi_value js_seek_hole(napi_env env, napi_callback_info info) { return seek(env, info, SEEK_HOLE); }

// posix_fadvise(POSIX_FADV_DONTNEED): drop this host's clean cached pages of the range (length 0:
// to the end), so the next read goes to the device; another host may have written it. Synchronous:
// it does not wait for I/O (dirty pages are skipped: sync first).
static napi_value js_drop_cache(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], "fd", &fd) || !get_offset(env, argv[1], "offset", &offset) ||
      !get_offset(env, argv[2], "length", &length))
    return NULL;
  int e = posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
  if (e != 0) {
    napi_throw(env, errno_error(env, e, "posix_fadvise(DONTNEED)"));
    return NULL;
  }
  return NULL;
}

// sched_setscheduler on thread tid (0: the calling one): SCHED_FIFO priority 1, with
// SCHED_RESET_ON_FORK so no thread or process it starts inherits it; or SCHED_OTHER again, at the
// nice it had.
static napi_value js_realtime(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool on;
  int tid;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[1], "tid", &tid)) return NULL;
  if (napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "on must be a boolean");
    return NULL;
  }
  struct sched_param param = {.sched_priority = on ? 1 : 0};
  if (sched_setscheduler((pid_t)tid, on ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER, &param) != 0) {
    napi_throw(env, errno_error(env, errno, "sched_setscheduler"));
    return NULL;
  }
  return NULL;
}

static napi_value js_check_offset(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int64_t offset;
  if (!get_args(env, info, 1, argv) || !get_offset(env, argv[0], "offset", &offset)) return NULL;
  napi_create_bigint_int64(env, offset, &out);
  return out;
}

// ---- module -------------------------------------------------------------------------------

static void set_int(napi_env env, napi_value obj, const char *name, int v) {
  napi_value n;
  napi_create_int32(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroout", NULL, js_zeroout, NULL, NULL, NULL, napi_enumerable, NULL},
      {"discard", NULL, js_discard, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeBehind", NULL, js_write_behind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockSize64", NULL, js_block_size64, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekData", NULL, js_seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekHole", NULL, js_seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"checkOffset", NULL, js_check_offset, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropCache", NULL, js_drop_cache, NULL, NULL, NULL, napi_enumerable, NULL},
      {"realtime", NULL, js_realtime, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  set_int(env, exports, "FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE);
  set_int(env, exports, "FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE);
  set_int(env, exports, "FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
