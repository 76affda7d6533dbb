/* Reply functions JS calls when a handler answers: (handle, id, ...) -> false when the request
 * was answered already (a duplicate or late reply changes nothing).
 *
 * Invariants: they run on the JS thread; each claims its record first (exactly-once), writes the
 * reply under the session's read lock (never to a destroyed session), then frees the record and
 * its data slot; read replies go to /dev/fuse straight from the slot (one writev, no copy here).
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
#include "napi_util.h"

#ifndef FOPEN_DIRECT_IO
#define FOPEN_DIRECT_IO (1 << 0)
#endif
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6) /* kernel 6.2+; libfuse 3.14 has no field for it */
#endif

#define REPLY(s, expr) \
  do { \
    pthread_rwlock_rdlock(&(s)->alive); \
    if (!(s)->dead) { expr; } \
    pthread_rwlock_unlock(&(s)->alive); \
  } while (0)

#define OPS(...) (ops_mask((int[]){__VA_ARGS__, 0}))
static uint64_t ops_mask(const int *ops) {
  uint64_t m = 0;
  for (; *ops; ops++) m |= 1ull << *ops;
  return m;
}

/* Claim the record for (handle, id, ...) arguments; NULL when it was answered already. A reply
 * kind that does not fit the request (a wrapper bug) answers EIO instead of touching state the
 * request does not have (data slot, directory handle). */
static rec_t *claim(napi_env env, napi_callback_info info, size_t n, napi_value *argv, session_t **ps, uint64_t ops) {
  size_t argc = n;
  for (size_t i = 0; i < n; i++) napi_get_undefined(env, &argv[i]);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session_t *s = sess(env, argv[0]);
  *ps = s;
  rec_t *r = s ? rec_claim(s, num(env, argv[1])) : NULL;
  if (r && ops && !(ops & (1ull << r->op))) {
    REPLY(s, fuse_reply_err(r->req, EIO));
    rec_finish(s, r);
    return NULL;
  }
  return r;
}


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

/* reply(h, id, errno): 0 = success without data. */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s, 0);
  if (!r) return boolean(env, 0);
  double e = num(env, argv[2]);
  int err = e >= 0 && e < 512 ? (int)e : EIO; /* the kernel refuses error replies outside (-512, 0] */
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
  rec_t *r = claim(env, info, 2, argv, &s, OPS(OP_GETATTR, OP_SETATTR));
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
  rec_t *r = claim(env, info, 2, argv, &s, OPS(OP_LOOKUP, OP_MKNOD, OP_MKDIR, OP_SYMLINK, OP_LINK));
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
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_OPEN));
  if (!r) return boolean(env, 0);
  int rc = open_reply(s, r, (uint64_t)num(env, argv[2]), NULL);
  rec_finish(s, r);
  return boolean(env, rc == 0);
}

/* replyCreate(h, id, fh): entry attributes in scratch. */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_CREATE));
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
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_READ));
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
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_WRITE));
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
  rec_t *r = claim(env, info, 2, argv, &s, OPS(OP_STATFS));
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
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_LSEEK));
  if (!r) return boolean(env, 0);
  REPLY(s, fuse_reply_lseek(r->req, (off_t)num(env, argv[2])));
  rec_finish(s, r);
  return boolean(env, 1);
}

static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session_t *s;
  rec_t *r = claim(env, info, 3, argv, &s, OPS(OP_READLINK));
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
  rec_t *r = claim(env, info, 4, argv, &s, OPS(OP_READDIR));
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

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
const napi_property_descriptor reply_props[] = {
    FN("reply", js_reply),
    FN("replyAttr", js_reply_attr),
    FN("replyEntry", js_reply_entry),
    FN("replyOpen", js_reply_open),
    FN("replyCreate", js_reply_create),
    FN("replyRead", js_reply_read),
    FN("replyWrite", js_reply_write),
    FN("replyStatfs", js_reply_statfs),
    FN("replyLseek", js_reply_lseek),
    FN("replyReadlink", js_reply_readlink),
    FN("replyReaddir", js_reply_readdir),
    FN("slotBuffer", js_slot_buffer),
};
const size_t reply_props_count = sizeof(reply_props) / sizeof(reply_props[0]);
