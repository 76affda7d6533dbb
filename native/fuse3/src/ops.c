/* libfuse low-level handlers (worker threads): turn each request into a record for JS, or answer
 * it here when no JS is needed (init, forget, opendir/releasedir, readdir past offset 0, reads and
 * writes of plainly mapped extents: nio.c).
 *
 * Invariants:
 *   - a handler never blocks on JS: it queues and returns, so the worker goes back to /dev/fuse
 *     (native reads and writes block only on their device);
 *   - nothing here keeps a pointer into libfuse's per-worker buffers after returning: write data
 *     is copied into a data slot, names into malloc'd paths, fuse_file_info into the record.
 */
#include "fuse3.h"
#include "nmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static session_t *S(fuse_req_t req) { return fuse_req_userdata(req); }

void enqueue(session_t *s, rec_t *r) {
  r->next = NULL;
  pthread_mutex_lock(&s->qlock);
  if (s->qtail) s->qtail->next = r;
  else s->qhead = r;
  s->qtail = r;
  session_wake(s);
  pthread_mutex_unlock(&s->qlock);
}

static rec_t *new_or_fail(fuse_req_t req, int op) {
  rec_t *r = rec_new(S(req), req, op);
  if (!r) fuse_reply_err(req, ENOMEM);
  return r;
}

/* A name op: r->name = parent's path + "/" + name. */
static rec_t *named(fuse_req_t req, int op, fuse_ino_t parent, const char *name) {
  char *path = inode_child_path(S(req), parent, name);
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return NULL;
  }
  rec_t *r = new_or_fail(req, op);
  if (!r) {
    free(path);
    return NULL;
  }
  r->ino = parent;
  r->name = path;
  return r;
}

static void ll_init(void *ud, struct fuse_conn_info *conn) {
  session_t *s = ud;
  const cfg_t *c = &s->cfg;
#define WANT(cap, on) \
  do { \
    if ((on) && (conn->capable & (cap))) conn->want |= (cap); \
    else conn->want &= ~(cap); \
  } while (0)
  WANT(FUSE_CAP_ASYNC_DIO, c->async_dio);
  WANT(FUSE_CAP_SPLICE_READ, c->splice_read);
  WANT(FUSE_CAP_SPLICE_WRITE, c->splice_write);
  WANT(FUSE_CAP_SPLICE_MOVE, c->splice_write);
  /* open(O_TRUNC) must reach setattr (truncate), as with libfuse 2, not be folded into open. */
  WANT(FUSE_CAP_ATOMIC_O_TRUNC, 0);
#undef WANT
  if (conn->max_write > c->max_write) conn->max_write = c->max_write;
  conn->max_read = c->max_read; /* must equal the max_read mount option */
  conn->max_background = c->max_background;
  conn->congestion_threshold = c->congestion_threshold;
  pthread_mutex_lock(&s->qlock);
  s->conn = (conninfo_t){conn->proto_major, conn->proto_minor, conn->capable, conn->want, conn->max_write,
                         conn->max_read, conn->max_background, conn->congestion_threshold};
  s->ev_mounted = 1;
  session_wake(s);
  pthread_mutex_unlock(&s->qlock);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  rec_t *r = named(req, OP_LOOKUP, parent, name);
  if (r) enqueue(S(req), r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  inode_forget(S(req), ino, n);
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  for (size_t i = 0; i < count; i++) inode_forget(S(req), f[i].ino, f[i].nlookup);
  fuse_reply_none(req);
}

static void simple(fuse_req_t req, int op, fuse_ino_t ino, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, op);
  if (!r) return;
  r->ino = ino;
  r->fh = fi ? fi->fh : 0;
  r->b = fi ? 1 : 0;
  enqueue(S(req), r);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { simple(req, OP_GETATTR, ino, fi); }

static double ms(const struct timespec *t) { return (double)t->tv_sec * 1e3 + (double)t->tv_nsec / 1e6; }

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, OP_SETATTR);
  if (!r) return;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  r->ino = ino;
  r->fh = fi ? fi->fh : 0;
  r->a = to_set | (fi ? (1 << 30) : 0);
  r->off = attr->st_size;
  r->len = attr->st_mode;
  r->b = attr->st_uid;
  r->c = attr->st_gid;
  r->d = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? ms(&now) : ms(&attr->st_atim);
  r->e = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? ms(&now) : ms(&attr->st_mtim);
  enqueue(S(req), r);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { simple(req, OP_READLINK, ino, NULL); }

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  rec_t *r = named(req, OP_MKNOD, parent, name);
  if (!r) return;
  r->a = mode;
  r->b = (double)rdev;
  enqueue(S(req), r);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  rec_t *r = named(req, OP_MKDIR, parent, name);
  if (!r) return;
  r->a = mode;
  enqueue(S(req), r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  rec_t *r = named(req, OP_UNLINK, parent, name);
  if (r) enqueue(S(req), r);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  rec_t *r = named(req, OP_RMDIR, parent, name);
  if (r) enqueue(S(req), r);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  rec_t *r = named(req, OP_SYMLINK, parent, name);
  if (!r) return;
  if (!(r->name2 = strdup(link))) {
    rec_finish(S(req), r);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  enqueue(S(req), r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags) {
  rec_t *r = named(req, OP_RENAME, parent, name);
  if (!r) return;
  r->a = flags;
  if (!(r->name2 = inode_child_path(S(req), newparent, newname))) {
    rec_finish(S(req), r);
    fuse_reply_err(req, ENOENT);
    return;
  }
  enqueue(S(req), r);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  rec_t *r = named(req, OP_LINK, newparent, newname); /* name = destination */
  if (!r) return;
  if (!(r->name2 = inode_path_dup(S(req), ino))) { /* name2 = source */
    rec_finish(S(req), r);
    fuse_reply_err(req, ENOENT);
    return;
  }
  enqueue(S(req), r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, OP_OPEN);
  if (!r) return;
  r->ino = ino;
  r->a = fi->flags;
  enqueue(S(req), r);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  rec_t *r = named(req, OP_CREATE, parent, name);
  if (!r) return;
  r->a = mode;
  r->b = fi->flags;
  enqueue(S(req), r);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  if (size > s->slot_size) size = s->slot_size;
  if (nio_read(s, req, size, off, fi->fh)) return; /* a plainly mapped extent: served here */
  slot_t *sl = slot_get(s);
  if (!sl) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  rec_t *r = rec_new(s, req, OP_READ);
  if (!r) {
    slot_put(s, sl);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  r->slot = sl;
  r->ino = ino;
  r->fh = fi->fh;
  r->off = off;
  r->len = size;
  enqueue(s, r);
}

static void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  size_t size = fuse_buf_size(bufv);
  if (size > s->slot_size) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (nio_write(s, req, bufv, off, fi->fh)) return; /* a plainly mapped extent: served here */
  rec_t *r = new_or_fail(req, OP_WRITE);
  if (!r) return;
  if (!(r->slot = slot_get(s))) {
    rec_finish(s, r);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
  dst.buf[0].mem = r->slot->mem;
  ssize_t got = fuse_buf_copy(&dst, bufv, 0);
  if (got < 0 || (size_t)got != size) {
    rec_finish(s, r);
    fuse_reply_err(req, got < 0 ? (int)-got : EIO);
    return;
  }
  r->ino = ino;
  r->fh = fi->fh;
  r->off = off;
  r->len = size;
  enqueue(s, r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { simple(req, OP_FLUSH, ino, fi); }

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { simple(req, OP_RELEASE, ino, fi); }

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, OP_FSYNC);
  if (!r) return;
  r->ino = ino;
  r->fh = fi->fh;
  r->a = datasync;
  enqueue(S(req), r);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { simple(req, OP_STATFS, ino, NULL); }

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, OP_FALLOCATE);
  if (!r) return;
  r->ino = ino;
  r->fh = fi->fh;
  r->a = mode;
  r->off = off;
  r->len = (uint64_t)length;
  enqueue(S(req), r);
}

static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  rec_t *r = new_or_fail(req, OP_LSEEK);
  if (!r) return;
  r->ino = ino;
  r->fh = fi->fh;
  r->off = off;
  r->a = whence;
  enqueue(S(req), r);
}

/* ---------- directories: the listing comes from JS once per opendir (offset 0) ---------- */

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  dirh_t *dh = calloc(1, sizeof(*dh));
  if (!dh) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  pthread_mutex_init(&dh->lock, NULL);
  fi->fh = (uint64_t)(uintptr_t)dh;
  if (fuse_reply_open(req, fi) != 0) dirh_free(dh);
}

void dirh_free(dirh_t *dh) {
  for (uint32_t i = 0; i < dh->count; i++) free(dh->names[i]);
  free(dh->names);
  free(dh->types);
  free(dh->inos);
  pthread_mutex_destroy(&dh->lock);
  free(dh);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  dirh_free((dirh_t *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

/* Reply with the entries from index off on (an entry's offset is its index + 1). */
void dirh_reply(session_t *s, fuse_req_t req, dirh_t *dh, size_t size, off_t off) {
  char *buf = malloc(size ? size : 1);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  size_t used = 0;
  pthread_mutex_lock(&dh->lock);
  for (uint32_t i = off < 0 ? 0 : (uint32_t)off; i < dh->count; i++) {
    struct stat st = {.st_ino = dh->inos[i], .st_mode = (mode_t)dh->types[i] << 12};
    size_t need = fuse_add_direntry(req, NULL, 0, dh->names[i], NULL, 0);
    if (used + need > size) break;
    fuse_add_direntry(req, buf + used, size - used, dh->names[i], &st, i + 1);
    used += need;
  }
  pthread_mutex_unlock(&dh->lock);
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  dirh_t *dh = (dirh_t *)(uintptr_t)fi->fh;
  pthread_mutex_lock(&dh->lock);
  int filled = dh->filled;
  pthread_mutex_unlock(&dh->lock);
  if (off > 0 && filled) {
    dirh_reply(S(req), req, dh, size, off);
    return;
  }
  rec_t *r = new_or_fail(req, OP_READDIR);
  if (!r) return;
  r->ino = ino;
  r->fh = fi->fh;
  r->off = off;
  r->len = size;
  enqueue(S(req), r);
}

const struct fuse_lowlevel_ops vstor_ll_ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .readlink = ll_readlink,
    .mknod = ll_mknod,
    .mkdir = ll_mkdir,
    .unlink = ll_unlink,
    .rmdir = ll_rmdir,
    .symlink = ll_symlink,
    .rename = ll_rename,
    .link = ll_link,
    .open = ll_open,
    .create = ll_create,
    .read = ll_read,
    .write_buf = ll_write_buf,
    .flush = ll_flush,
    .release = ll_release,
    .fsync = ll_fsync,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
    .statfs = ll_statfs,
    .fallocate = ll_fallocate,
    .lseek = ll_lseek,
};
