/* The native mapped path's tables: disks (their extents, blocked ranges, in-flight requests,
 * dirty devices), devices (dup'd fds by device id) and file handles (JS fd -> disk).
 *
 * Invariants:
 *   - nm->lock guards the three tables; a disk's own lock guards its contents; order: disk lock,
 *     then nm->lock, then a device's lock;
 *   - a disk or device is freed by its last reference: the table's (dropped on remove), one per
 *     bound fh (disks) or per request using it (devices), so a worker never sees freed memory;
 *   - extents are sorted, non-overlapping, and hold only what C may serve (see nmap.h).
 */
#include "nmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int nmap_init(session_t *s) {
  nmap_t *nm = calloc(1, sizeof(*nm));
  if (!nm) return -1;
  pthread_mutex_init(&nm->lock, NULL);
  nm->nfh_buckets = 256;
  nm->fh = calloc(nm->nfh_buckets, sizeof(*nm->fh));
  if (!nm->fh) {
    free(nm);
    return -1;
  }
  atomic_init(&nm->enabled, 1);
  unsigned t = s->cfg.max_threads;
  nm->per_dev = t / 4 > 2 ? t / 4 : 2;
  s->nm = nm;
  return 0;
}

static void ndisk_free(ndisk_t *d) {
  for (nrange_t *r = d->blocks, *n; r; r = n) n = r->next, free(r);
  for (nrange_t *r = d->waiters, *n; r; r = n) n = r->next, free(r);
  pthread_mutex_destroy(&d->lock);
  free(d->ext);
  free(d->dirty);
  free(d);
}

void ndisk_unref(ndisk_t *d) {
  if (atomic_fetch_sub(&d->refs, 1) == 1) ndisk_free(d);
}

void ndev_unref(ndev_t *dv) {
  if (atomic_fetch_sub(&dv->refs, 1) != 1) return;
  close(dv->fd);
  pthread_mutex_destroy(&dv->lock);
  free(dv);
}

/* After the FUSE loop ended (no worker left): drop every table reference. */
void nmap_free(session_t *s) {
  nmap_t *nm = s->nm;
  if (!nm) return;
  for (uint32_t i = 0; i < nm->nfh_buckets; i++) {
    for (fhent_t *e = nm->fh[i], *n; e; e = n) {
      n = e->next;
      ndisk_unref(e->disk);
      free(e);
    }
  }
  for (uint32_t i = 0; i < nm->ndisks; i++)
    if (nm->disks[i]) ndisk_unref(nm->disks[i]);
  for (uint32_t i = 0; i < nm->ndevs; i++)
    if (nm->devs[i]) ndev_unref(nm->devs[i]);
  free(nm->fh);
  free(nm->disks);
  free(nm->devs);
  pthread_mutex_destroy(&nm->lock);
  free(nm);
  s->nm = NULL;
}

/* Grow a pointer array to hold index i (nm->lock held). */
static int grow(void ***arr, uint32_t *n, uint32_t i) {
  if (i < *n) return 0;
  uint32_t cap = *n ? *n : 16;
  while (cap <= i) cap *= 2;
  void **a = realloc(*arr, cap * sizeof(void *));
  if (!a) return -1;
  memset(a + *n, 0, (cap - *n) * sizeof(void *));
  *arr = a;
  *n = cap;
  return 0;
}

/* JS thread: the disk with this id (made when create), not referenced for the caller. */
ndisk_t *nmap_disk(nmap_t *nm, uint32_t id, int create) {
  pthread_mutex_lock(&nm->lock);
  ndisk_t *d = id < nm->ndisks ? nm->disks[id] : NULL;
  if (!d && create && id < NMAP_MAX_DEV && grow((void ***)&nm->disks, &nm->ndisks, id) == 0 && (d = calloc(1, sizeof(*d)))) {
    d->id = id;
    atomic_init(&d->refs, 1);
    pthread_mutex_init(&d->lock, NULL);
    nm->disks[id] = d;
  }
  pthread_mutex_unlock(&nm->lock);
  return d;
}

/* JS thread: device id now reads/writes through fd (dup'd here); fd < 0 forgets it. */
int nmap_set_dev(nmap_t *nm, uint32_t id, int fd) {
  if (id >= NMAP_MAX_DEV) return -1;
  ndev_t *dv = NULL;
  if (fd >= 0) {
    if (!(dv = calloc(1, sizeof(*dv)))) return -1;
    if ((dv->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
      free(dv);
      return -1;
    }
    dv->id = id;
    atomic_init(&dv->refs, 1);
    pthread_mutex_init(&dv->lock, NULL);
  }
  pthread_mutex_lock(&nm->lock);
  ndev_t *old = NULL;
  if (grow((void ***)&nm->devs, &nm->ndevs, id) == 0) {
    old = nm->devs[id];
    nm->devs[id] = dv;
    dv = NULL;
  }
  pthread_mutex_unlock(&nm->lock);
  if (old) ndev_unref(old);
  if (dv) { /* could not grow the table */
    ndev_unref(dv);
    return -1;
  }
  return 0;
}

ndev_t *nmap_dev_get(nmap_t *nm, uint32_t id) {
  pthread_mutex_lock(&nm->lock);
  ndev_t *dv = id < nm->ndevs ? nm->devs[id] : NULL;
  if (dv) atomic_fetch_add(&dv->refs, 1);
  pthread_mutex_unlock(&nm->lock);
  return dv;
}

/* ---------- file handles ---------- */

static uint32_t fh_bucket(const nmap_t *nm, uint64_t fh) { return (uint32_t)((fh * 0x9e3779b97f4a7c15ull) >> 40) & (nm->nfh_buckets - 1); }

static void fh_grow(nmap_t *nm) {
  uint32_t nb = nm->nfh_buckets * 2;
  fhent_t **b = calloc(nb, sizeof(*b));
  if (!b) return; /* longer chains, still correct */
  fhent_t **old = nm->fh;
  uint32_t on = nm->nfh_buckets;
  nm->fh = b;
  nm->nfh_buckets = nb;
  for (uint32_t i = 0; i < on; i++) {
    for (fhent_t *e = old[i], *n; e; e = n) {
      n = e->next;
      uint32_t k = fh_bucket(nm, e->fh);
      e->next = b[k];
      b[k] = e;
    }
  }
  free(old);
}

int nmap_fh_bind(nmap_t *nm, uint64_t fh, uint32_t disk) {
  fhent_t *e = calloc(1, sizeof(*e));
  if (!e) return -1;
  pthread_mutex_lock(&nm->lock);
  ndisk_t *d = disk < nm->ndisks ? nm->disks[disk] : NULL;
  if (!d) {
    pthread_mutex_unlock(&nm->lock);
    free(e);
    return -1;
  }
  atomic_fetch_add(&d->refs, 1);
  e->fh = fh;
  e->disk = d;
  uint32_t k = fh_bucket(nm, fh);
  e->next = nm->fh[k];
  nm->fh[k] = e;
  if (++nm->nfh > nm->nfh_buckets * 2) fh_grow(nm);
  pthread_mutex_unlock(&nm->lock);
  return 0;
}

void nmap_fh_unbind(nmap_t *nm, uint64_t fh) {
  fhent_t *gone = NULL;
  pthread_mutex_lock(&nm->lock);
  for (fhent_t **p = &nm->fh[fh_bucket(nm, fh)]; *p; p = &(*p)->next) {
    if ((*p)->fh == fh) {
      gone = *p;
      *p = gone->next;
      nm->nfh--;
      break;
    }
  }
  pthread_mutex_unlock(&nm->lock);
  if (gone) {
    ndisk_unref(gone->disk);
    free(gone);
  }
}

ndisk_t *nmap_fh_disk(nmap_t *nm, uint64_t fh) {
  ndisk_t *d = NULL;
  pthread_mutex_lock(&nm->lock);
  for (fhent_t *e = nm->fh[fh_bucket(nm, fh)]; e; e = e->next) {
    if (e->fh == fh) {
      d = e->disk;
      atomic_fetch_add(&d->refs, 1);
      break;
    }
  }
  pthread_mutex_unlock(&nm->lock);
  return d;
}

/* ---------- a disk's extents and ranges (its lock held) ---------- */

size_t ndisk_find(const ndisk_t *d, uint64_t off) {
  size_t lo = 0, hi = d->n; /* first extent with vend > off */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (d->ext[mid].vend <= off) lo = mid + 1;
    else hi = mid;
  }
  return lo < d->n && d->ext[lo].vstart <= off ? lo : d->n;
}

/* Replace whatever lies in [lo, hi) with add[0..nadd) (sorted, inside [lo, hi)); extents crossing
 * lo or hi keep their outside parts. */
int ndisk_splice(ndisk_t *d, uint64_t lo, uint64_t hi, const nextent_t *add, size_t nadd) {
  size_t a = 0, b;
  while (a < d->n && d->ext[a].vend <= lo) a++;
  for (b = a; b < d->n && d->ext[b].vstart < hi; b++) {}
  nextent_t left, right;
  int has_left = a < b && d->ext[a].vstart < lo, has_right = a < b && d->ext[b - 1].vend > hi;
  if (has_left) {
    left = d->ext[a];
    left.vend = lo;
  }
  if (has_right) {
    right = d->ext[b - 1];
    right.pstart += hi - right.vstart;
    right.vstart = hi;
  }
  size_t put = nadd + (size_t)has_left + (size_t)has_right;
  size_t n = d->n - (b - a) + put;
  if (n > d->cap) {
    size_t cap = d->cap ? d->cap : 16;
    while (cap < n) cap *= 2;
    nextent_t *e = realloc(d->ext, cap * sizeof(*e));
    if (!e) return -1;
    d->ext = e;
    d->cap = cap;
  }
  memmove(d->ext + a + put, d->ext + b, (d->n - b) * sizeof(nextent_t));
  size_t at = a;
  if (has_left) d->ext[at++] = left;
  memcpy(d->ext + at, add, nadd * sizeof(nextent_t));
  at += nadd;
  if (has_right) d->ext[at] = right;
  d->n = n;
  return 0;
}

int ndisk_busy(const ndisk_t *d, uint64_t start, uint64_t end, int writes) {
  for (const nreq_t *r = d->flight; r; r = r->fnext)
    if ((r->write || !writes) && r->off < end && start < r->off + r->len) return 1;
  return 0;
}

int ndisk_blocked(const ndisk_t *d, uint64_t start, uint64_t end) {
  for (const nrange_t *b = d->blocks; b; b = b->next)
    if (b->start < end && start < b->end) return 1;
  return 0;
}

void ndisk_mark_dirty(ndisk_t *d, uint32_t dev) {
  for (size_t i = 0; i < d->ndirty; i++)
    if (d->dirty[i] == dev) return;
  if (d->ndirty == d->dirty_cap) {
    size_t cap = d->dirty_cap ? d->dirty_cap * 2 : 4;
    uint32_t *n = realloc(d->dirty, cap * sizeof(*n));
    if (!n) {
      d->dirty_all = 1;
      return;
    }
    d->dirty = n;
    d->dirty_cap = cap;
  }
  d->dirty[d->ndirty++] = dev;
}
