/* N-API face of the native mapped path (src/agent/frontend/native-map.ts drives it from the
 * agent's TableListener hooks).
 *
 * Invariants: every function runs on the JS thread, under the session's read lock, and does
 * nothing once the FUSE loop has ended (the tables are gone then: no worker can use them); none
 * waits on a worker: mapBlock answers at once and, when requests are in flight in the range,
 * EV_UNBLOCKED follows from the worker that ends the last of them.
 */
#include "nmap.h"

#include <stdlib.h>
#include <string.h>

#include "napi_util.h"

#define ARGS(n) \
  size_t argc = n; \
  napi_value argv[n]; \
  for (size_t i_ = 0; i_ < n; i_++) napi_get_undefined(env, &argv[i_]); \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL); \
  session_t *s = sess(env, argv[0]); \
  if (!s) THROW("fuse3: bad handle")

/* Run body with nm live (the loop has not ended); else do nothing. */
#define LIVE(...) \
  do { \
    pthread_rwlock_rdlock(&s->alive); \
    nmap_t *nm = s->dead ? NULL : s->nm; \
    if (nm) { __VA_ARGS__; } \
    pthread_rwlock_unlock(&s->alive); \
  } while (0)

static uint32_t u32(napi_env env, napi_value v) { return (uint32_t)num(env, v); }
static uint64_t u64(napi_env env, napi_value v) {
  double d = num(env, v);
  return d > 0 ? (uint64_t)d : 0;
}

/* mapDevice(h, id, fd): device id reads and writes through (a dup of) fd; fd < 0 forgets it. */
static napi_value js_map_device(napi_env env, napi_callback_info info) {
  ARGS(3);
  int ok = 0;
  LIVE(ok = nmap_set_dev(nm, u32(env, argv[1]), (int)num(env, argv[2])) == 0);
  return boolean(env, ok);
}

/* mapDisk(h, disk, size, readonly, sparse): make or update a disk; extents past size go. */
static napi_value js_map_disk(napi_env env, napi_callback_info info) {
  ARGS(5);
  int ok = 0;
  LIVE({
    ndisk_t *d = nmap_disk(nm, u32(env, argv[1]), 1);
    if (d) {
      bool ro = false, sp = false;
      napi_get_value_bool(env, argv[3], &ro);
      napi_get_value_bool(env, argv[4], &sp);
      uint64_t size = u64(env, argv[2]);
      pthread_mutex_lock(&d->lock);
      d->size = size;
      d->readonly = ro;
      d->sparse = sp;
      ok = ndisk_splice(d, size, UINT64_MAX, NULL, 0) == 0;
      pthread_mutex_unlock(&d->lock);
    }
  });
  return boolean(env, ok);
}

/* mapApply(h, disk, lo, hi, extents: Float64Array [vstart, vend, pstart, device, ro]..., n, block):
 * [lo, hi) now maps exactly these extents; the block (if not 0) is lifted. false: no memory (the
 * range stays blocked: it all goes to JS). */
static napi_value js_map_apply(napi_env env, napi_callback_info info) {
  ARGS(7);
  napi_typedarray_type t;
  size_t len = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, argv[4], &t, &len, &data, NULL, NULL) != napi_ok || t != napi_float64_array)
    THROW("fuse3.mapApply: extents must be a Float64Array");
  uint32_t n = u32(env, argv[5]);
  if ((size_t)n * 5 > len) THROW("fuse3.mapApply: fewer extents than n");
  const double *x = data;
  uint64_t lo = u64(env, argv[2]), hi = u64(env, argv[3]);
  uint32_t block = u32(env, argv[6]);
  nextent_t *add = n ? malloc(n * sizeof(*add)) : NULL;
  if (n && !add) return boolean(env, 0);
  for (uint32_t i = 0; i < n; i++) {
    const double *e = x + (size_t)i * 5;
    add[i] = (nextent_t){(uint64_t)e[0], (uint64_t)e[1], (uint64_t)e[2], (uint32_t)e[3], (uint8_t)(e[4] != 0)};
  }
  int ok = 0;
  LIVE({
    ndisk_t *d = nmap_disk(nm, u32(env, argv[1]), 0);
    if (d) {
      pthread_mutex_lock(&d->lock);
      ok = ndisk_splice(d, lo, hi, add, n) == 0;
      if (ok) ndisk_splice(d, d->size, UINT64_MAX, NULL, 0);
      for (nrange_t **p = &d->blocks; ok && block && *p; p = &(*p)->next) {
        if ((*p)->id == block) {
          nrange_t *b = *p;
          *p = b->next;
          free(b);
          break;
        }
      }
      pthread_mutex_unlock(&d->lock);
    }
  });
  free(add);
  return boolean(env, ok);
}

/* mapBlock(h, disk, start, end[, writes]) -> id: no new native request starts in [start, end)
 * until mapApply(..., id) or mapUnblock; id > 0: requests (writes, when `writes`: the change keeps
 * every read's answer) are in flight there, EV_UNBLOCKED(id) follows when the last one ended;
 * id < 0: none is (-id is the block). 0: no such disk (nothing to wait for). */
static napi_value js_map_block(napi_env env, napi_callback_info info) {
  ARGS(5);
  double out = 0;
  int broken = 0;
  uint64_t start = u64(env, argv[2]), end = u64(env, argv[3]);
  bool writes = false;
  if (argc > 4) napi_get_value_bool(env, argv[4], &writes); /* undefined: false */
  LIVE({
    ndisk_t *d = nmap_disk(nm, u32(env, argv[1]), 0);
    nrange_t *b = d ? calloc(1, sizeof(*b)) : NULL;
    nrange_t *w = d ? calloc(1, sizeof(*w)) : NULL;
    if (d && (!b || !w)) {
      /* no memory for the bookkeeping: stop the native path for good (correct, slower) */
      atomic_store(&nm->enabled, 0);
      pthread_mutex_lock(&d->lock);
      int busy = ndisk_busy(d, 0, UINT64_MAX, 0);
      pthread_mutex_unlock(&d->lock);
      broken = busy;
    } else if (d) {
      uint32_t id = atomic_fetch_add(&nm->next_block, 1) % 0x7fffffffu + 1;
      *b = (nrange_t){start, end, id, NULL, 0};
      *w = *b;
      w->writes = writes;
      pthread_mutex_lock(&d->lock);
      b->next = d->blocks;
      d->blocks = b;
      b = NULL;
      if (ndisk_busy(d, start, end, writes)) {
        w->next = d->waiters;
        d->waiters = w;
        w = NULL;
        out = id;
      } else {
        out = -(double)id;
      }
      pthread_mutex_unlock(&d->lock);
    }
    free(b);
    free(w);
  });
  if (broken) THROW("fuse3.mapBlock: out of memory with native requests in flight");
  napi_value v;
  napi_create_double(env, out, &v);
  return v;
}

/* mapUnblock(h, disk, id): lift a block without a new mapping. */
static napi_value js_map_unblock(napi_env env, napi_callback_info info) {
  ARGS(3);
  uint32_t id = u32(env, argv[2]);
  LIVE({
    ndisk_t *d = nmap_disk(nm, u32(env, argv[1]), 0);
    if (d) {
      pthread_mutex_lock(&d->lock);
      for (nrange_t **p = &d->blocks; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
          nrange_t *b = *p;
          *p = b->next;
          free(b);
          break;
        }
      }
      pthread_mutex_unlock(&d->lock);
    }
  });
  return NULL;
}

/* mapRemove(h, disk): the disk is gone; its fhs go to JS (EIO there) from now on. */
static napi_value js_map_remove(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t id = u32(env, argv[1]);
  LIVE({
    ndisk_t *d = NULL;
    pthread_mutex_lock(&nm->lock);
    if (id < nm->ndisks && (d = nm->disks[id])) nm->disks[id] = NULL;
    pthread_mutex_unlock(&nm->lock);
    if (d) {
      pthread_mutex_lock(&d->lock);
      d->removed = 1;
      d->n = 0;
      pthread_mutex_unlock(&d->lock);
      ndisk_unref(d);
    }
  });
  return NULL;
}

/* fhBind(h, fh, disk) / fhUnbind(h, fh): the JS fd the kernel's requests carry -> its disk. */
static napi_value js_fh_bind(napi_env env, napi_callback_info info) {
  ARGS(3);
  int ok = 0;
  LIVE(ok = nmap_fh_bind(nm, u64(env, argv[1]), u32(env, argv[2])) == 0);
  return boolean(env, ok);
}

static napi_value js_fh_unbind(napi_env env, napi_callback_info info) {
  ARGS(2);
  LIVE(nmap_fh_unbind(nm, u64(env, argv[1])));
  return NULL;
}

/* mapPull(h, disk) -> device ids written natively since the last pull, or null for "all of them". */
static napi_value js_map_pull(napi_env env, napi_callback_info info) {
  ARGS(2);
  napi_value arr;
  napi_create_array(env, &arr);
  int all = 0;
  LIVE({
    ndisk_t *d = nmap_disk(nm, u32(env, argv[1]), 0);
    if (d) {
      pthread_mutex_lock(&d->lock);
      for (size_t i = 0; i < d->ndirty; i++) {
        napi_value v;
        napi_create_uint32(env, d->dirty[i], &v);
        napi_set_element(env, arr, (uint32_t)i, v);
      }
      all = d->dirty_all;
      d->ndirty = 0;
      d->dirty_all = 0;
      pthread_mutex_unlock(&d->lock);
    }
  });
  if (all) napi_get_null(env, &arr);
  return arr;
}

/* mapEnable(h, on): switch the native path (off: every request goes to JS). */
static napi_value js_map_enable(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool on = false;
  napi_get_value_bool(env, argv[1], &on);
  LIVE(atomic_store(&nm->enabled, on));
  return NULL;
}

static void set_num(napi_env env, napi_value o, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

/* mapStats(h) -> {reads, writes, toJs, queued, errors, extents?, extentBytes?} (counters for the
 * whole session, also after the loop ended; extents only while it runs) */
static napi_value js_map_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "reads", (double)atomic_load(&s->nat_reads));
  set_num(env, o, "writes", (double)atomic_load(&s->nat_writes));
  set_num(env, o, "toJs", (double)atomic_load(&s->nat_to_js));
  set_num(env, o, "queued", (double)atomic_load(&s->nat_queued));
  set_num(env, o, "errors", (double)atomic_load(&s->nat_errors));
  /* Never hold nm->lock while taking a disk's lock: a worker resolving a request holds d->lock and
   * then takes nm->lock (nmap_dev_get), so nesting them here deadlocked the agent. The disks are
   * referenced under nm->lock, then read one at a time. */
  LIVE({
    double n = 0, cap = 0;
    pthread_mutex_lock(&nm->lock);
    uint32_t count = nm->ndisks;
    ndisk_t **ds = count ? calloc(count, sizeof(*ds)) : NULL;
    for (uint32_t i = 0; ds && i < count; i++)
      if ((ds[i] = nm->disks[i])) atomic_fetch_add(&ds[i]->refs, 1);
    pthread_mutex_unlock(&nm->lock);
    for (uint32_t i = 0; ds && i < count; i++) {
      ndisk_t *d = ds[i];
      if (!d) continue;
      pthread_mutex_lock(&d->lock);
      n += (double)d->n;
      cap += (double)d->cap;
      pthread_mutex_unlock(&d->lock);
      ndisk_unref(d);
    }
    free(ds);
    set_num(env, o, "extents", n);
    set_num(env, o, "extentBytes", cap * (double)sizeof(nextent_t));
  });
  return o;
}

/* mapWritten(h) -> writes the native path finished, ok or not (atomic; counted before each leaves
 * the flight list, so a table change that waited for a write sees it) */
static napi_value js_map_written(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_value x;
  napi_create_double(env, (double)atomic_load(&s->nat_written), &x);
  return x;
}

/* mapServed(h) -> reads + writes the native path answered (atomics only: no lock, so it is safe
 * to call on every ack while worker threads hold disk locks) */
static napi_value js_map_served(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_value x;
  napi_create_double(env, (double)atomic_load(&s->nat_reads) + (double)atomic_load(&s->nat_writes), &x);
  return x;
}

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
const napi_property_descriptor nmap_props[] = {
    FN("mapDevice", js_map_device),
    FN("mapDisk", js_map_disk),
    FN("mapApply", js_map_apply),
    FN("mapBlock", js_map_block),
    FN("mapUnblock", js_map_unblock),
    FN("mapRemove", js_map_remove),
    FN("fhBind", js_fh_bind),
    FN("fhUnbind", js_fh_unbind),
    FN("mapPull", js_map_pull),
    FN("mapEnable", js_map_enable),
    FN("mapStats", js_map_stats),
    FN("mapServed", js_map_served),
    FN("mapWritten", js_map_written),
};
const size_t nmap_props_count = sizeof(nmap_props) / sizeof(nmap_props[0]);
