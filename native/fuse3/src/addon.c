/* N-API face of the libfuse 3 front end: mount/unmount, the batched wakeup of JS, and the reply
 * functions JS calls when a handler answers.
 *
 * Invariants:
 *   - every function here runs on the JS thread;
 *   - one wakeup hands JS everything queued at that moment, in descriptor chunks of desc_cap
 *     records (one JS call per chunk); what arrives meanwhile is picked up by a fresh wakeup, so
 *     other JS work (timers, sockets) runs between bursts;
 *   - replies are written to /dev/fuse from this thread (one writev each), straight from the data
 *     slot for reads: no copy in user space.
 */
#include "fuse3.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#ifndef FOPEN_DIRECT_IO
#define FOPEN_DIRECT_IO (1 << 0)
#endif
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6) /* kernel 6.2+; libfuse 3.14 has no field for it */
#endif

/* ---------- libfuse log capture (so mount errors reach JS) ---------- */

static __thread char *cap_buf;
static __thread size_t cap_len;

void log_capture_begin(char *buf, size_t len) {
  cap_buf = buf;
  cap_len = len;
  if (len) buf[0] = 0;
}
void log_capture_end(void) { cap_buf = NULL; }

static void log_func(enum fuse_log_level level, const char *fmt, va_list ap) {
  if (cap_buf) {
    size_t used = strlen(cap_buf);
    if (used + 1 < cap_len) vsnprintf(cap_buf + used, cap_len - used, fmt, ap);
    return;
  }
  vfprintf(stderr, fmt, ap);
}

/* ---------- helpers ---------- */

#define THROW(msg) \
  do { \
    napi_throw_error(env, NULL, msg); \
    return NULL; \
  } while (0)

static session_t *sess(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}
static double num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}
static napi_value boolean(napi_env env, int b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}
static char *str_dup(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* Claim the record for (handle, id, ...) arguments; NULL when it was answered already. */
static rec_t *claim(napi_env env, napi_callback_info info, size_t n, napi_value *argv, session_t **ps) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = sess(env, argv[0]);
  *ps = s;
  return s ? rec_claim(s, num(env, argv[1])) : NULL;
}

#define REPLY(s, expr) \
  do { \
    pthread_rwlock_rdlock(&(s)->alive); \
    if (!(s)->dead) { expr; } \
    pthread_rwlock_unlock(&(s)->alive); \
  } while (0)

static void set_ts(struct timespec *t, double ms) {
  double sec = floor(ms / 1000.0);
  t->tv_sec = (time_t)sec;
  long ns = (long)llround((ms - sec * 1000.0) * 1e6);
  t->tv_nsec = ns < 0 ? 0 : ns > 999999999 ? 999999999 : ns;
}

static void fill_stat(session_t *s, uint64_t ino, struct stat *st) {
  const double *c = s->scratch;
  memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_mode = (mode_t)c[SC_MODE];
  st->st_uid = (uid_t)c[SC_UID];
  st->st_gid = (gid_t)c[SC_GID];
  st->st_size = (off_t)c[SC_SIZE];
  st->st_blocks = (blkcnt_t)c[SC_BLOCKS];
  st->st_blksize = (blksize_t)c[SC_BLKSIZE];
  st->st_nlink = c[SC_NLINK] > 0 ? (nlink_t)c[SC_NLINK] : 1;
  st->st_rdev = (dev_t)c[SC_RDEV];
  set_ts(&st->st_atim, c[SC_ATIME]);
  set_ts(&st->st_mtim, c[SC_MTIME]);
  set_ts(&st->st_ctim, c[SC_CTIME]);
}

/* ---------- reply functions: (handle, id, ...) ---------- */

/* reply(h, id, errno): 0 = success without data. */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  int err = (int)num(env, argv[2]);
  if (err == 0 && r->op == OP_RENAME) inode_rename(s, r->name, r->name2);
  if (err == ENOENT && r->op == OP_LOOKUP && s->cfg.negative_timeout > 0) {
    struct fuse_entry_param e = {.ino = 0, .entry_timeout = s->cfg.negative_timeout};
    REPLY(s, fuse_reply_entry(r->req, &e));
  } else {
    REPLY(s, fuse_reply_err(r->req, err));
  }
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  session_t *s;
  rec_t *r = claim(env, info, 2, argv, &s);
  if (!r) return boolean(env, 0);
  struct stat st;
  fill_stat(s, r->ino, &st);
  REPLY(s, fuse_reply_attr(r->req, &st, s->cfg.attr_timeout));
  rec_finish(s, r);
  return boolean(env, 1);
}

static void entry_for(session_t *s, rec_t *r, struct fuse_entry_param *e) {
  memset(e, 0, sizeof(*e));
  e->ino = inode_get(s, r->name, 1);
  e->generation = 1;
  fill_stat(s, e->ino, &e->attr);
  e->attr_timeout = s->cfg.attr_timeout;
  e->entry_timeout = s->cfg.entry_timeout;
}

/* replyEntry(h, id): lookup, mknod, mkdir, symlink, link (attributes in scratch). */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  session_t *s;
  rec_t *r = claim(env, info, 2, argv, &s);
  if (!r) return boolean(env, 0);
  struct fuse_entry_param e;
  entry_for(s, r, &e);
  if (!e.ino) REPLY(s, fuse_reply_err(r->req, ENOMEM));
  else REPLY(s, fuse_reply_entry(r->req, &e));
  rec_finish(s, r);
  return boolean(env, 1);
}

static int open_reply(session_t *s, rec_t *r, uint64_t fh, const struct fuse_entry_param *e) {
  int rc = -EIO;
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = fh;
  fi.direct_io = s->cfg.direct_io ? 1 : 0;
  pthread_rwlock_rdlock(&s->alive);
  if (!s->dead) {
    if (e) {
      rc = fuse_reply_create(r->req, e, &fi);
    } else if (s->cfg.parallel_direct_writes) {
      /* fuse_open_out by hand: libfuse 3.14's fuse_file_info cannot carry this flag. */
      struct {
        uint64_t fh;
        uint32_t open_flags, padding;
      } out = {fh, FOPEN_PARALLEL_DIRECT_WRITES | (fi.direct_io ? FOPEN_DIRECT_IO : 0), 0};
      struct iovec iov = {&out, sizeof(out)};
      rc = fuse_reply_iov(r->req, &iov, 1);
    } else {
      rc = fuse_reply_open(r->req, &fi);
    }
  }
  pthread_rwlock_unlock(&s->alive);
  return rc;
}

/* replyOpen(h, id, fh) -> false when the kernel no longer waits (JS must release fh itself). */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  int rc = open_reply(s, r, (uint64_t)num(env, argv[2]), NULL);
  rec_finish(s, r);
  return boolean(env, rc == 0);
}

/* replyCreate(h, id, fh): entry attributes in scratch. */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  struct fuse_entry_param e;
  entry_for(s, r, &e);
  int rc = open_reply(s, r, (uint64_t)num(env, argv[2]), &e);
  rec_finish(s, r);
  return boolean(env, rc == 0);
}

/* replyRead(h, id, n): the first n bytes of the request's slot. */
static napi_value js_reply_read(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  double n = num(env, argv[2]);
  size_t len = n <= 0 ? 0 : n >= (double)r->len ? r->len : (size_t)n;
  REPLY(s, fuse_reply_buf(r->req, r->slot->mem, len));
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  double n = num(env, argv[2]);
  size_t len = n <= 0 ? 0 : n >= (double)r->len ? r->len : (size_t)n;
  REPLY(s, fuse_reply_write(r->req, len));
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  session_t *s;
  rec_t *r = claim(env, info, 2, argv, &s);
  if (!r) return boolean(env, 0);
  const double *c = s->scratch;
  struct statvfs v;
  memset(&v, 0, sizeof(v));
  v.f_bsize = (unsigned long)c[V_BSIZE];
  v.f_frsize = (unsigned long)c[V_FRSIZE];
  v.f_blocks = (fsblkcnt_t)c[V_BLOCKS];
  v.f_bfree = (fsblkcnt_t)c[V_BFREE];
  v.f_bavail = (fsblkcnt_t)c[V_BAVAIL];
  v.f_files = (fsfilcnt_t)c[V_FILES];
  v.f_ffree = (fsfilcnt_t)c[V_FFREE];
  v.f_favail = (fsfilcnt_t)c[V_FAVAIL];
  v.f_fsid = (unsigned long)c[V_FSID];
  v.f_flag = (unsigned long)c[V_FLAG];
  v.f_namemax = (unsigned long)c[V_NAMEMAX];
  REPLY(s, fuse_reply_statfs(r->req, &v));
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  REPLY(s, fuse_reply_lseek(r->req, (off_t)num(env, argv[2])));
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s);
  if (!r) return boolean(env, 0);
  char *link = str_dup(env, argv[2]);
  if (link) REPLY(s, fuse_reply_readlink(r->req, link));
  else REPLY(s, fuse_reply_err(r->req, ENOMEM));
  free(link);
  rec_finish(s, r);
  return boolean(env, 1);
}

/* replyReaddir(h, id, names, types?): keep the listing in the dir handle, answer from offset. */
static napi_value js_reply_readdir(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  session_t *s;
  rec_t *r = claim(env, info, 4, argv, &s);
  if (!r) return boolean(env, 0);
  dirh_t *dh = (dirh_t *)(uintptr_t)r->fh;
  uint32_t n = 0, nt = 0;
  napi_get_array_length(env, argv[2], &n);
  napi_valuetype tt;
  napi_typeof(env, argv[3], &tt);
  if (tt == napi_object) napi_get_array_length(env, argv[3], &nt);
  uint32_t count = n + 2;
  char **names = calloc(count, sizeof(char *));
  uint8_t *types = calloc(count, 1);
  uint64_t *inos = calloc(count, sizeof(uint64_t));
  int ok = names && types && inos && (names[0] = strdup(".")) && (names[1] = strdup(".."));
  if (ok) {
    types[0] = types[1] = 4; /* DT_DIR */
    inos[0] = r->ino;
    inos[1] = 1;
  }
  for (uint32_t i = 0; ok && i < n; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    char *name = str_dup(env, v);
    if (!name) {
      ok = 0;
      break;
    }
    names[i + 2] = name;
    if (i < nt) {
      napi_value t;
      napi_get_element(env, argv[3], i, &t);
      types[i + 2] = (uint8_t)num(env, t);
    }
    char *path = inode_child_path(s, r->ino, name);
    inos[i + 2] = path ? inode_get(s, path, 0) : 0;
    free(path);
  }
  if (!ok) {
    for (uint32_t i = 0; names && i < count; i++) free(names[i]);
    free(names);
    free(types);
    free(inos);
    REPLY(s, fuse_reply_err(r->req, ENOMEM));
  } else {
    pthread_mutex_lock(&dh->lock);
    for (uint32_t i = 0; i < dh->count; i++) free(dh->names[i]);
    free(dh->names);
    free(dh->types);
    free(dh->inos);
    dh->names = names;
    dh->types = types;
    dh->inos = inos;
    dh->count = count;
    dh->filled = 1;
    pthread_mutex_unlock(&dh->lock);
    REPLY(s, dirh_reply(s, r->req, dh, r->len, r->off));
  }
  rec_finish(s, r);
  return boolean(env, 1);
}

/* ---------- data slots as Buffers ---------- */

static void slot_finalize(napi_env env, void *data, void *hint) { slot_unref(hint); }

/* slotBuffer(h, idx): a Buffer over slot idx (slot_size bytes); JS caches it per slot. */
static napi_value js_slot_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = sess(env, argv[0]);
  slot_t *sl = s ? slot_at(s, (uint32_t)num(env, argv[1])) : NULL;
  if (!sl) THROW("fuse3: no such data slot");
  atomic_fetch_add(&sl->refs, 1);
  if (napi_create_external_buffer(env, s->slot_size, sl->mem, slot_finalize, sl, &out) != napi_ok) {
    slot_unref(sl);
    THROW("fuse3: cannot create a Buffer over a data slot");
  }
  return out;
}

/* ---------- waking JS ---------- */

typedef struct batch {
  napi_env env;
  session_t *s;
  napi_value cb, strings;
  uint32_t n, nstr;
} batch_t;

static double *slot_of(batch_t *b) { return b->s->desc + (size_t)b->n * STRIDE; }

static double add_string(batch_t *b, napi_value v) {
  if (!b->strings) napi_create_array(b->env, &b->strings);
  napi_set_element(b->env, b->strings, b->nstr, v);
  return (double)b->nstr++;
}
static double add_cstring(batch_t *b, const char *p) {
  napi_value v;
  if (!p || napi_create_string_utf8(b->env, p, NAPI_AUTO_LENGTH, &v) != napi_ok) return -1;
  return add_string(b, v);
}

static void flush(batch_t *b) {
  if (!b->n) return;
  napi_env env = b->env;
  napi_value argv[2], global, result;
  napi_create_uint32(env, b->n, &argv[0]);
  if (b->strings) argv[1] = b->strings;
  else napi_get_undefined(env, &argv[1]);
  napi_get_global(env, &global);
  napi_status st = napi_make_callback(env, b->s->actx, global, b->cb, 2, argv, &result);
  if (st == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  b->n = b->nstr = 0;
  b->strings = NULL;
}

static double *begin_entry(batch_t *b, double op) {
  if (b->n == b->s->desc_cap) flush(b);
  double *d = slot_of(b);
  for (int i = 0; i < STRIDE; i++) d[i] = 0;
  d[F_OP] = op;
  d[F_SLOT] = d[F_PATH] = d[F_NAME] = d[F_NAME2] = -1;
  return d;
}

static void add_rec(batch_t *b, rec_t *r) {
  session_t *s = b->s;
  double *d = begin_entry(b, r->op);
  d[F_ID] = rec_id(r);
  d[F_INO] = (double)r->ino;
  d[F_FH] = (double)r->fh;
  d[F_OFF] = (double)r->off;
  d[F_LEN] = (double)r->len;
  d[F_A] = r->a;
  d[F_B] = r->b;
  d[F_C] = r->c;
  d[F_D] = r->d;
  d[F_E] = r->e;
  if (r->slot) d[F_SLOT] = r->slot->idx;
  napi_value p;
  if (inode_path_for_js(s, r->ino, b->env, &p)) d[F_PATH] = add_string(b, p);
  if (r->name) d[F_NAME] = add_cstring(b, r->name);
  if (r->name2) d[F_NAME2] = add_cstring(b, r->name2);
  b->n++;
}

static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  session_t *s = ctx;
  if (!env || !cb) return;
  pthread_mutex_lock(&s->qlock);
  rec_t *head = s->qhead;
  s->qhead = s->qtail = NULL;
  int mounted = s->ev_mounted, failed = s->ev_failed, ended = s->ev_ended;
  s->ev_mounted = s->ev_failed = s->ev_ended = 0;
  conninfo_t c = s->conn;
  int fail_errno = s->fail_errno, end_rc = s->end_rc;
  char msg[sizeof(s->fail_msg)];
  memcpy(msg, s->fail_msg, sizeof(msg));
  pthread_mutex_unlock(&s->qlock);

  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  batch_t b = {.env = env, .s = s, .cb = cb};
  if (mounted) {
    double *d = begin_entry(&b, EV_MOUNTED);
    d[F_A] = c.want;
    d[F_B] = c.capable;
    d[F_C] = c.proto_major * 1000 + c.proto_minor;
    d[F_OFF] = c.max_write;
    d[F_LEN] = c.max_read;
    d[F_D] = c.max_background;
    d[F_E] = c.congestion_threshold;
    b.n++;
  }
  while (head) {
    pthread_mutex_lock(&s->rlock); /* the end-of-session sweep may touch gen/state */
    while (head && b.n < s->desc_cap) {
      rec_t *r = head;
      head = r->next;
      if (r->state == R_BUSY) add_rec(&b, r);
    }
    pthread_mutex_unlock(&s->rlock);
    if (head) flush(&b);
  }
  if (failed) {
    double *d = begin_entry(&b, EV_FAILED);
    d[F_A] = fail_errno;
    d[F_NAME] = add_cstring(&b, msg);
    b.n++;
  }
  if (ended) {
    double *d = begin_entry(&b, EV_ENDED);
    d[F_A] = end_rc;
    b.n++;
  }
  flush(&b);
  napi_close_handle_scope(env, scope);

  if (ended) {
    if (s->js_hold) {
      s->js_hold = 0;
      napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
    }
    return;
  }
  pthread_mutex_lock(&s->qlock);
  int again = s->qhead || s->ev_mounted || s->ev_failed || s->ev_ended;
  s->wake_pending = again;
  pthread_mutex_unlock(&s->qlock);
  if (again) napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
}

static void env_cleanup(void *arg) {
  session_t *s = arg;
  pthread_mutex_lock(&s->qlock);
  s->js_gone = 1;
  s->cleanup_hooked = 0;
  pthread_mutex_unlock(&s->qlock);
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  session_t *s = data;
  pthread_mutex_lock(&s->qlock);
  s->js_gone = 1;
  int hooked = s->cleanup_hooked;
  s->cleanup_hooked = 0;
  pthread_mutex_unlock(&s->qlock);
  if (hooked) napi_remove_env_cleanup_hook(env, env_cleanup, s);
  napi_async_destroy(env, s->actx);
  napi_delete_reference(env, s->desc_ref);
  napi_delete_reference(env, s->scratch_ref);
  session_unref(s);
}

static void handle_finalize(napi_env env, void *data, void *hint) { session_unref(data); }

/* ---------- mount / unmount ---------- */

static double prop(napi_env env, napi_value obj, const char *key, double dflt) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return dflt;
  if (t == napi_number) return num(env, v);
  if (t == napi_boolean) {
    bool x = false;
    napi_get_value_bool(env, v, &x);
    return x ? 1 : 0;
  }
  return dflt;
}

static double *f64(napi_env env, napi_value v, size_t *len, napi_ref *ref) {
  napi_typedarray_type t;
  void *data = NULL;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, &data, &ab, &off) != napi_ok || t != napi_float64_array) return NULL;
  if (napi_create_reference(env, v, 1, ref) != napi_ok) return NULL;
  return data;
}

static void read_cfg(napi_env env, napi_value o, cfg_t *c) {
  c->entry_timeout = prop(env, o, "entryTimeout", 0);
  c->attr_timeout = prop(env, o, "attrTimeout", 0);
  c->negative_timeout = prop(env, o, "negativeTimeout", 0);
  c->max_write = (unsigned)prop(env, o, "maxWrite", 1 << 20);
  c->max_read = (unsigned)prop(env, o, "maxRead", 1 << 20);
  c->max_background = (unsigned)prop(env, o, "maxBackground", 64);
  c->congestion_threshold = (unsigned)prop(env, o, "congestionThreshold", 48);
  c->max_threads = (unsigned)prop(env, o, "maxThreads", 8);
  c->max_idle_threads = (unsigned)prop(env, o, "maxIdleThreads", 8);
  c->clone_fd = (int)prop(env, o, "cloneFd", 1);
  c->direct_io = (int)prop(env, o, "directIo", 1);
  c->parallel_direct_writes = (int)prop(env, o, "parallelDirectWrites", 0);
  c->splice_read = (int)prop(env, o, "spliceRead", 0);
  c->splice_write = (int)prop(env, o, "spliceWrite", 0);
  c->async_dio = (int)prop(env, o, "asyncDio", 1);
  c->debug = (int)prop(env, o, "debug", 0);
  if (c->max_write < 4096) c->max_write = 4096;
  if (c->max_read < 4096) c->max_read = 4096;
}

/* mount(mountpoint, options[], cfg, desc: Float64Array, scratch: Float64Array, onBatch) -> handle */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], handle, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) THROW("fuse3.mount: expected 6 arguments");
  session_t *s = calloc(1, sizeof(*s));
  if (!s) THROW("fuse3.mount: out of memory");
  atomic_init(&s->refs, 1); /* the JS handle */
  pthread_mutex_init(&s->qlock, NULL);
  pthread_mutex_init(&s->rlock, NULL);
  pthread_mutex_init(&s->slock, NULL);
  pthread_mutex_init(&s->ilock, NULL);
  pthread_rwlock_init(&s->alive, NULL);
  s->env = env;
  s->mnt = str_dup(env, argv[0]);
  read_cfg(env, argv[2], &s->cfg);
  s->slot_size = s->cfg.max_write > s->cfg.max_read ? s->cfg.max_write : s->cfg.max_read;
  size_t dlen = 0, slen = 0;
  s->desc = f64(env, argv[3], &dlen, &s->desc_ref);
  s->scratch = f64(env, argv[4], &slen, &s->scratch_ref);
  s->desc_cap = (uint32_t)(dlen / STRIDE);
  if (!s->mnt || !s->desc || !s->scratch || s->desc_cap == 0 || slen < SCRATCH_MIN || tables_init(s) != 0) {
    if (s->desc_ref) napi_delete_reference(env, s->desc_ref);
    if (s->scratch_ref) napi_delete_reference(env, s->scratch_ref);
    session_unref(s);
    THROW("fuse3.mount: bad arguments (mountpoint, options, config, Float64Array desc, Float64Array scratch, function)");
  }

  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, "vstor");
  if (s->cfg.debug) fuse_opt_add_arg(&args, "-d");
  uint32_t nopt = 0;
  napi_get_array_length(env, argv[1], &nopt);
  for (uint32_t i = 0; i < nopt; i++) {
    napi_value v;
    napi_get_element(env, argv[1], i, &v);
    char *o = str_dup(env, v);
    if (o && *o) {
      fuse_opt_add_arg(&args, "-o");
      fuse_opt_add_arg(&args, o);
    }
    free(o);
  }
  char msg[512];
  log_capture_begin(msg, sizeof(msg));
  s->se = fuse_session_new(&args, &vstor_ll_ops, sizeof(vstor_ll_ops), s);
  log_capture_end();
  fuse_opt_free_args(&args);
  if (!s->se) {
    napi_delete_reference(env, s->desc_ref);
    napi_delete_reference(env, s->scratch_ref);
    session_unref(s);
    char err[600];
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = 0;
    snprintf(err, sizeof(err), "fuse3.mount: %s", msg[0] ? msg : "invalid options");
    THROW(err);
  }

  napi_create_string_utf8(env, "vstor:fuse3", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->actx);
  atomic_fetch_add(&s->refs, 1); /* the threadsafe function */
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, s, tsfn_finalize, s, call_js, &s->tsfn) != napi_ok) {
    fuse_session_destroy(s->se);
    napi_async_destroy(env, s->actx);
    napi_delete_reference(env, s->desc_ref);
    napi_delete_reference(env, s->scratch_ref);
    atomic_fetch_sub(&s->refs, 1);
    session_unref(s);
    THROW("fuse3.mount: cannot create the threadsafe function");
  }
  napi_acquire_threadsafe_function(s->tsfn); /* the JS thread's hold, dropped at EV_ENDED */
  s->js_hold = 1;
  napi_add_env_cleanup_hook(env, env_cleanup, s);
  s->cleanup_hooked = 1;
  if (session_start(s) != 0) {
    /* No loop thread: end as if it had run and failed (fuse_session is freed by the event path). */
    fuse_session_destroy(s->se);
    s->se = NULL;
    pthread_mutex_lock(&s->qlock);
    s->ev_failed = 1;
    s->fail_errno = EAGAIN;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "cannot start the FUSE thread");
    s->ev_ended = 1;
    s->end_rc = -EAGAIN;
    session_wake(s);
    pthread_mutex_unlock(&s->qlock);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  }
  /* The handle owns the reference taken at calloc. */
  if (napi_create_external(env, s, handle_finalize, NULL, &handle) != napi_ok) {
    session_unmount(s, 1);
    session_unref(s);
    THROW("fuse3.mount: cannot create the handle");
  }
  return handle;
}

/* unmount(h, force): drain (unless force), then unmount; EV_ENDED follows. */
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = sess(env, argv[0]);
  if (!s) THROW("fuse3.unmount: bad handle");
  bool force = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &force);
  session_unmount(s, force);
  return NULL;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_int32(env, fuse_version(), &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  fuse_set_log_func(log_func);
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL},
      {"replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL},
      {"replyRead", NULL, js_reply_read, NULL, NULL, NULL, napi_default, NULL},
      {"replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL},
      {"replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL},
      {"replyLseek", NULL, js_reply_lseek, NULL, NULL, NULL, napi_default, NULL},
      {"replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL},
      {"replyReaddir", NULL, js_reply_readdir, NULL, NULL, NULL, napi_default, NULL},
      {"slotBuffer", NULL, js_slot_buffer, NULL, NULL, NULL, napi_default, NULL},
      {"version", NULL, js_version, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
