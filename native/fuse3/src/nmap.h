/* The native mapped path: each disk's plainly mapped extents, kept in C so the FUSE worker
 * threads can pread/pwrite them without a JS hop.
 *
 * Invariants (the blocking protocol of src/agent/state.ts, TableListener):
 *   - a native request resolves its whole range under its disk's lock, registers it in the disk's
 *     in-flight list before the lock is dropped, and leaves that list only after its device I/O
 *     ended; it never looks at the map again;
 *   - a blocked range (block() until applied()) admits no new native request: they go to JS, whose
 *     RangeGate parks them; a block's waiter is told (EV_UNBLOCKED) once no in-flight request
 *     (no write, for a change that only write-protects) overlaps it, so the JS thread never waits
 *     on a worker; a request never looks at the map after resolving, so a change may be applied
 *     while reads it does not affect are in flight;
 *   - extents reference devices by id; the device table holds a dup of the JS Device's fd per id,
 *     refcounted by the table and every request using it, so JS may close its own fd at any time;
 *   - C only decides what it can: a request it cannot serve whole (zero, no-write/shared writes,
 *     invalid, error, no device, past the end, readonly disk, removed disk, a unit of zeros on a
 *     sparse disk, blocked range) goes to JS unchanged.
 */
#ifndef VSTOR_NMAP_H
#define VSTOR_NMAP_H

#include "fuse3.h"

#define NMAP_UNIT (1u << 20)
#define NMAP_MAX_SEGS 4
#define NMAP_MAX_DEV (1u << 20) /* device ids above this stay on the JS path */

typedef struct nextent {
  uint64_t vstart, vend, pstart;
  uint32_t dev;
  uint8_t ro; /* NoWrite or Shared: reads only */
} nextent_t;

typedef struct nrange {
  uint64_t start, end;
  uint32_t id;
  struct nrange *next;
  int writes; /* a waiter for the writes in flight only (the change keeps every read's answer) */
} nrange_t;

typedef struct ndev {
  int fd;           /* our dup of the JS Device's fd, closed with the last reference */
  uint32_t id;
  atomic_int refs;  /* the device table + every request holding it */
  pthread_mutex_t lock;
  int busy;         /* workers in I/O on this device now (at most nm->per_dev) */
  struct nreq *qhead, *qtail; /* requests waiting for one of them */
} ndev_t;

typedef struct nseg {
  uint64_t len, ppos;
} nseg_t;

/* One native request from resolution to reply. */
typedef struct nreq {
  fuse_req_t req;
  struct ndisk *disk;
  ndev_t *dev;
  int write;
  uint64_t off, len;
  nseg_t seg[NMAP_MAX_SEGS];
  int nseg;
  char *buf;     /* the data: the worker's buffer, libfuse's write buffer, or slot->mem */
  slot_t *slot;  /* owned when queued */
  struct nreq *fprev, *fnext; /* the disk's in-flight list */
  struct nreq *qnext;         /* the device's queue */
} nreq_t;

typedef struct ndisk {
  uint32_t id;
  atomic_int refs; /* the disk table + one per bound fh */
  pthread_mutex_t lock;
  nextent_t *ext;
  size_t n, cap;
  uint64_t size;
  int removed, readonly, sparse;
  nrange_t *blocks;  /* ranges JS is changing */
  nrange_t *waiters; /* block() calls waiting for in-flight requests to leave */
  nreq_t *flight;    /* native requests in flight */
  uint32_t *dirty;   /* device ids written since JS last pulled (fsync) */
  size_t ndirty, dirty_cap;
  int dirty_all;     /* the set could not grow: the next pull says "every device" */
} ndisk_t;

typedef struct fhent {
  uint64_t fh;
  ndisk_t *disk;
  struct fhent *next;
} fhent_t;

struct nmap {
  atomic_int enabled;
  unsigned per_dev; /* workers one device may hold; the rest of its requests queue */
  pthread_mutex_t lock; /* disks, devices, fh table */
  ndisk_t **disks;
  uint32_t ndisks;
  ndev_t **devs;
  uint32_t ndevs;
  fhent_t **fh;
  uint32_t nfh_buckets, nfh;
  atomic_uint next_block;
};

/* nmap.c: tables (JS thread, except the lookups marked for workers) */
int nmap_init(session_t *s);
void nmap_free(session_t *s);
ndisk_t *nmap_disk(nmap_t *nm, uint32_t id, int create);
void ndisk_unref(ndisk_t *d);
int nmap_set_dev(nmap_t *nm, uint32_t id, int fd);
ndev_t *nmap_dev_get(nmap_t *nm, uint32_t id); /* worker: a reference, or NULL */
void ndev_unref(ndev_t *dv);
int nmap_fh_bind(nmap_t *nm, uint64_t fh, uint32_t disk);
void nmap_fh_unbind(nmap_t *nm, uint64_t fh);
ndisk_t *nmap_fh_disk(nmap_t *nm, uint64_t fh); /* worker: a reference, or NULL */
int ndisk_splice(ndisk_t *d, uint64_t lo, uint64_t hi, const nextent_t *add, size_t nadd); /* lock held */
size_t ndisk_find(const ndisk_t *d, uint64_t off); /* lock held: index of the extent holding off, or d->n */
/* A request (a write, when writes) in flight overlaps [start, end); lock held. */
int ndisk_busy(const ndisk_t *d, uint64_t start, uint64_t end, int writes);
int ndisk_blocked(const ndisk_t *d, uint64_t start, uint64_t end); /* lock held */
void ndisk_mark_dirty(ndisk_t *d, uint32_t dev); /* lock held */

/* nio.c: worker side */
int nio_read(session_t *s, fuse_req_t req, size_t size, off_t off, uint64_t fh);
int nio_write(session_t *s, fuse_req_t req, struct fuse_bufvec *bufv, off_t off, uint64_t fh);
void nio_release_waiters(session_t *s, ndisk_t *d); /* lock held: tell JS about blocks now clear */

#endif
