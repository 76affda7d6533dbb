/* The native mapped path in the FUSE worker threads: resolve a read or write against its disk's
 * extents, pread/pwrite the backing device, reply.
 *
 * Invariants:
 *   - nio_read/nio_write return 0 having done nothing (the caller hands the request to JS), or 1
 *     once the request is answered or queued: it is answered exactly once, by finish();
 *   - a request leaves its disk's in-flight list, marks its device dirty (writes) and tells JS
 *     about device errors before it is answered, so an fsync or a table change that follows the
 *     reply sees it; it stays counted in s->nat_inflight until then (unmount drains on that);
 *   - at most nm->per_dev workers do I/O on one device; its other requests wait in the device's
 *     queue (their data in a slot) and the busy workers take them, so a hung device holds a few
 *     workers, never all of them.
 */
#include "nmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------- the worker's own read buffer ---------- */

typedef struct tbuf {
  size_t size;
  char *mem;
} tbuf_t;
static pthread_key_t tbuf_key;
static pthread_once_t tbuf_once = PTHREAD_ONCE_INIT;
static void tbuf_free(void *p) {
  tbuf_t *t = p;
  free(t->mem);
  free(t);
}
static void tbuf_init(void) { pthread_key_create(&tbuf_key, tbuf_free); }

static char *tbuf(size_t size) {
  pthread_once(&tbuf_once, tbuf_init);
  tbuf_t *t = pthread_getspecific(tbuf_key);
  if (t && t->size >= size) return t->mem;
  if (!t && !(t = calloc(1, sizeof(*t)))) return NULL;
  free(t->mem);
  t->mem = NULL;
  t->size = 0;
  if (posix_memalign((void **)&t->mem, 4096, size) != 0) t->mem = NULL;
  else t->size = size;
  pthread_setspecific(tbuf_key, t);
  return t->mem;
}

/* ---------- unmount drain: native requests count until answered ---------- */

static int gate_enter(session_t *s) {
  atomic_fetch_add(&s->nat_inflight, 1);
  if (!atomic_load(&s->nat_off)) return 1;
  if (atomic_fetch_sub(&s->nat_inflight, 1) == 1) session_drain_check(s);
  return 0;
}

static void gate_leave(session_t *s) {
  if (atomic_fetch_sub(&s->nat_inflight, 1) == 1 && atomic_load(&s->nat_off)) session_drain_check(s);
}

/* ---------- resolution (disk lock held) ---------- */

/* 1: r holds its segments and a device reference and is in the disk's in-flight list; 0: JS. */
static int resolve(session_t *s, ndisk_t *d, nreq_t *r, int unit_of_zeros) {
  if (d->removed || (r->write && (d->readonly || (d->sparse && unit_of_zeros)))) return 0;
  if (r->off >= d->size) return 0;
  uint64_t end = r->off + r->len;
  if (end > d->size) {
    if (r->write) return 0; /* a write straddling the end: JS answers with the short count */
    end = d->size;
    r->len = end - r->off;
  }
  if (d->blocks && ndisk_blocked(d, r->off, end)) return 0;
  size_t i = ndisk_find(d, r->off);
  uint64_t v = r->off;
  uint32_t dev = 0;
  int n = 0;
  while (v < end) {
    if (i >= d->n) return 0;
    const nextent_t *e = &d->ext[i];
    if (e->vstart > v || (r->write && e->ro)) return 0;
    if (n > 0 && e->dev != dev) return 0; /* one device per request: its queue, its hang */
    dev = e->dev;
    uint64_t to = e->vend < end ? e->vend : end;
    uint64_t ppos = e->pstart + (v - e->vstart);
    if (n > 0 && r->seg[n - 1].ppos + r->seg[n - 1].len == ppos) {
      r->seg[n - 1].len += to - v; /* contiguous on the device: one pread */
    } else {
      if (n == NMAP_MAX_SEGS) return 0;
      r->seg[n].ppos = ppos;
      r->seg[n].len = to - v;
      n++;
    }
    v = to;
    i++;
  }
  if (!(r->dev = nmap_dev_get(s->nm, dev))) return 0;
  r->nseg = n;
  r->fprev = NULL;
  r->fnext = d->flight;
  if (d->flight) d->flight->fprev = r;
  d->flight = r;
  return 1;
}

/* Tell JS about every waiting block() whose range no request is in any more (disk lock held). */
void nio_release_waiters(session_t *s, ndisk_t *d) {
  for (nrange_t **p = &d->waiters; *p;) {
    nrange_t *w = *p;
    if (ndisk_busy(d, w->start, w->end, w->writes)) {
      p = &w->next;
      continue;
    }
    *p = w->next;
    post_note(s, EV_UNBLOCKED, d->id, w->id, 0, 0, 0, 0);
    free(w);
  }
}

/* ---------- I/O and completion ---------- */

/* 0 or an errno; a device that ends early is EIO (a mapping never points past it). */
static int do_io(nreq_t *r) {
  char *p = r->buf;
  int fd = r->dev->fd;
  for (int i = 0; i < r->nseg; i++) {
    const nseg_t *g = &r->seg[i];
    for (uint64_t done = 0; done < g->len;) {
      ssize_t k = r->write ? pwrite(fd, p + done, g->len - done, (off_t)(g->ppos + done))
                           : pread(fd, p + done, g->len - done, (off_t)(g->ppos + done));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return errno ? errno : EIO;
      if (k == 0) return EIO;
      done += (uint64_t)k;
    }
    p += g->len;
  }
  return 0;
}

#define ERR_NOSLOT (-1) /* no memory to queue the request: ENOMEM, not a device error */

static void finish(session_t *s, nreq_t *r, int err) {
  ndisk_t *d = r->disk;
  int full = err == ENOSPC || err == EDQUOT;
  /* counted before the request leaves the flight list: a table change that waited for it reads a
   * count that includes it (a move skips rereading a chunk only when no write finished meanwhile) */
  if (r->write) atomic_fetch_add(&s->nat_written, 1);
  pthread_mutex_lock(&d->lock);
  if (r->fprev) r->fprev->fnext = r->fnext;
  else d->flight = r->fnext;
  if (r->fnext) r->fnext->fprev = r->fprev;
  if (!err && r->write) ndisk_mark_dirty(d, r->dev->id);
  if (err && err != ERR_NOSLOT && !full) {
    /* as DiskIO.deviceError: EIO to the caller, a device-error fault from JS (told before a
     * table change waiting for this request can go on) */
    atomic_fetch_add(&s->nat_errors, 1);
    post_note(s, EV_DEVERR, d->id, r->dev->id, (double)r->off, (double)r->len, err, 0);
  }
  if (d->waiters) nio_release_waiters(s, d);
  pthread_mutex_unlock(&d->lock);
  if (err) fuse_reply_err(r->req, err == ERR_NOSLOT ? ENOMEM : full ? ENOSPC : EIO);
  else if (r->write) fuse_reply_write(r->req, r->len);
  else fuse_reply_buf(r->req, r->buf, r->len);
  atomic_fetch_add(r->write ? &s->nat_writes : &s->nat_reads, 1);
  if (r->slot) slot_put(s, r->slot);
  ndev_unref(r->dev);
  ndisk_unref(d);
  free(r);
  gate_leave(s);
}

/* Do r now, or queue it when its device has per_dev workers busy; a busy worker then takes what
 * its device queued. */
static void run(session_t *s, nreq_t *r) {
  ndev_t *dv = r->dev;
  pthread_mutex_lock(&dv->lock);
  if ((unsigned)dv->busy >= s->nm->per_dev) {
    if (!(r->slot = slot_get(s))) {
      pthread_mutex_unlock(&dv->lock);
      finish(s, r, ERR_NOSLOT);
      return;
    }
    if (r->write) memcpy(r->slot->mem, r->buf, r->len); /* libfuse's buffer is gone after we return */
    r->buf = r->slot->mem;
    r->qnext = NULL;
    if (dv->qtail) dv->qtail->qnext = r;
    else dv->qhead = r;
    dv->qtail = r;
    pthread_mutex_unlock(&dv->lock);
    atomic_fetch_add(&s->nat_queued, 1);
    return;
  }
  dv->busy++;
  atomic_fetch_add(&dv->refs, 1); /* ours, across the requests we take from the queue */
  pthread_mutex_unlock(&dv->lock);
  while (r) {
    finish(s, r, do_io(r));
    pthread_mutex_lock(&dv->lock);
    if ((r = dv->qhead)) {
      if (!(dv->qhead = r->qnext)) dv->qtail = NULL;
    } else {
      dv->busy--;
    }
    pthread_mutex_unlock(&dv->lock);
  }
  ndev_unref(dv);
}

static nreq_t *start(session_t *s, uint64_t fh, uint64_t off, uint64_t len, int write, ndisk_t **pd) {
  nmap_t *nm = s->nm;
  if (!nm || !atomic_load(&nm->enabled) || len == 0) return NULL;
  if (!gate_enter(s)) return NULL;
  ndisk_t *d = nmap_fh_disk(nm, fh);
  nreq_t *r = d ? calloc(1, sizeof(*r)) : NULL;
  if (!r) {
    if (d) ndisk_unref(d);
    gate_leave(s);
    atomic_fetch_add(&s->nat_to_js, 1);
    return NULL;
  }
  r->disk = d;
  r->off = off;
  r->len = len;
  r->write = write;
  *pd = d;
  return r;
}

static void give_up(session_t *s, nreq_t *r) {
  ndisk_unref(r->disk);
  free(r);
  gate_leave(s);
  atomic_fetch_add(&s->nat_to_js, 1);
}

int nio_read(session_t *s, fuse_req_t req, size_t size, off_t off, uint64_t fh) {
  ndisk_t *d;
  char *buf = tbuf(s->slot_size);
  nreq_t *r = buf && off >= 0 ? start(s, fh, (uint64_t)off, size, 0, &d) : NULL;
  if (!r) return 0;
  pthread_mutex_lock(&d->lock);
  int ok = resolve(s, d, r, 0);
  pthread_mutex_unlock(&d->lock);
  if (!ok) {
    give_up(s, r);
    return 0;
  }
  r->req = req;
  r->buf = buf;
  run(s, r);
  return 1;
}

static int all_zero(const char *p, size_t n) {
  static const char zeros[4096];
  for (size_t at = 0; at < n; at += sizeof(zeros)) {
    size_t k = n - at < sizeof(zeros) ? n - at : sizeof(zeros);
    if (memcmp(p + at, zeros, k) != 0) return 0;
  }
  return 1;
}

int nio_write(session_t *s, fuse_req_t req, struct fuse_bufvec *bufv, off_t off, uint64_t fh) {
  size_t size = fuse_buf_size(bufv);
  if (size > s->slot_size || off < 0) return 0;
  char *data;
  if (bufv->count == 1 && bufv->idx == 0 && !(bufv->buf[0].flags & FUSE_BUF_IS_FD)) {
    data = (char *)bufv->buf[0].mem + bufv->off;
  } else { /* spliced or split data: copy it once into the worker's buffer */
    if (!(data = tbuf(s->slot_size))) return 0;
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    dst.buf[0].mem = data;
    if (fuse_buf_copy(&dst, bufv, 0) != (ssize_t)size) return 0;
  }
  ndisk_t *d;
  nreq_t *r = start(s, fh, (uint64_t)off, size, 1, &d);
  if (!r) return 0;
  /* zero reclaim: a whole aligned unit of zeros on a sparse disk becomes a discard in JS */
  int zeros = size == NMAP_UNIT && off % NMAP_UNIT == 0 && all_zero(data, size);
  pthread_mutex_lock(&d->lock);
  int ok = resolve(s, d, r, zeros);
  pthread_mutex_unlock(&d->lock);
  if (!ok) {
    give_up(s, r);
    return 0;
  }
  r->req = req;
  r->buf = data;
  run(s, r);
  return 1;
}
