/* N-API face of the libfuse 3 front end: mount/unmount and the batched wakeup of JS (the reply
 * functions are in reply.c).
 *
 * Invariants:
 *   - every function here runs on the JS thread (libfuse's log callback excepted);
 *   - one wakeup hands JS everything queued at that moment, in descriptor chunks of desc_cap
 *     records (one JS call per chunk); what arrives meanwhile is picked up by a fresh wakeup, so
 *     other JS work (timers, sockets) runs between bursts;
 *   - the JS thread holds its own reference on the threadsafe function until EV_ENDED, so it can
 *     always re-arm a wakeup.
 */
#include "fuse3.h"
#include "nmap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "napi_util.h"

extern const napi_property_descriptor reply_props[];
extern const size_t reply_props_count;
extern const napi_property_descriptor nmap_props[];
extern const size_t nmap_props_count;

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
  note_t *notes = s->nhead;
  s->nhead = s->ntail = NULL;
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
  while (notes) {
    note_t *n = notes;
    notes = n->next;
    double *d = begin_entry(&b, n->op);
    d[F_INO] = n->ino;
    d[F_FH] = n->fh;
    d[F_OFF] = n->off;
    d[F_LEN] = n->len;
    d[F_A] = n->a;
    d[F_B] = n->b;
    b.n++;
    free(n);
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
  int again = s->qhead || s->nhead || s->ev_mounted || s->ev_failed || s->ev_ended;
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
  if (!s->mnt || !s->desc || !s->scratch || s->desc_cap == 0 || slen < SCRATCH_MIN || tables_init(s) != 0 || nmap_init(s) != 0) {
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
      {"version", NULL, js_version, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_define_properties(env, exports, reply_props_count, reply_props);
  napi_define_properties(env, exports, nmap_props_count, nmap_props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
