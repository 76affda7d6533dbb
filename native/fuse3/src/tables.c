/* Records (requests in flight), data slots and the inode table.
 *
 * Invariants:
 *   - record memory lives until the session is freed (chunks are never moved or released), so an
 *     id from JS is always safe to look up; the generation in the id rejects stale replies;
 *   - inode numbers are stable per path for the life of the session: an entry is never removed,
 *     forget only lowers its lookup count; root is ino 1 ("/");
 *   - a slot's memory is released by the last of its owners (session, JS Buffers).
 */
#include "fuse3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------- records ---------- */

static rec_t *rec_at(session_t *s, uint32_t idx) {
  if (idx >= s->nrec) return NULL;
  return &s->chunks[idx >> REC_CHUNK_BITS][idx & (REC_CHUNK - 1)];
}

rec_t *rec_new(session_t *s, fuse_req_t req, int op) {
  pthread_mutex_lock(&s->rlock);
  rec_t *r = s->free_recs;
  if (r) {
    s->free_recs = r->next;
  } else {
    uint32_t c = s->nrec >> REC_CHUNK_BITS;
    if ((s->nrec & (REC_CHUNK - 1)) == 0) {
      if (c >= REC_MAX_CHUNKS || !(s->chunks[c] = calloc(REC_CHUNK, sizeof(rec_t)))) {
        pthread_mutex_unlock(&s->rlock);
        return NULL;
      }
    }
    r = &s->chunks[c][s->nrec & (REC_CHUNK - 1)];
    r->idx = s->nrec++;
  }
  uint32_t idx = r->idx, gen = r->gen;
  memset(r, 0, sizeof(*r));
  r->idx = idx;
  r->gen = gen;
  r->req = req;
  r->op = (uint8_t)op;
  r->state = R_BUSY;
  pthread_mutex_unlock(&s->rlock);
  return r;
}

double rec_id(const rec_t *r) { return (double)(r->gen & 0x3fffffffu) * REC_IDX_SPAN + (double)r->idx; }

rec_t *rec_claim(session_t *s, double id) {
  if (!(id >= 0)) return NULL;
  uint64_t v = (uint64_t)id;
  uint32_t idx = (uint32_t)(v & ((1u << REC_IDX_BITS) - 1));
  uint32_t gen = (uint32_t)(v >> REC_IDX_BITS);
  pthread_mutex_lock(&s->rlock);
  rec_t *r = rec_at(s, idx);
  if (!r || r->state != R_BUSY || (r->gen & 0x3fffffffu) != gen) r = NULL;
  else r->state = R_ANSWERING;
  pthread_mutex_unlock(&s->rlock);
  return r;
}

/* Release a claimed (or swept) record: its slot goes back to the pool, drain accounting. */
void rec_finish(session_t *s, rec_t *r) {
  pthread_mutex_lock(&s->rlock);
  if (r->slot) {
    slot_put(s, r->slot);
    r->slot = NULL;
  }
  free(r->name);
  free(r->name2);
  r->name = r->name2 = NULL;
  if (r->drain) {
    r->drain = 0;
    if (s->drain_left > 0 && --s->drain_left == 0 && s->state == ST_DRAINING && atomic_load(&s->nat_inflight) == 0)
      start_umount_locked(s);
  }
  r->state = R_FREE;
  r->gen++;
  r->next = s->free_recs;
  s->free_recs = r;
  pthread_mutex_unlock(&s->rlock);
}

/* After the loop ended (s->dead set, no reply in progress): answer every request still open with
 * EIO (the kernel side is gone, so the write just frees the request) and make later JS replies
 * for them no-ops. Records stay allocated: the queue or JS may still hold them. */
void rec_sweep(session_t *s) {
  pthread_mutex_lock(&s->rlock);
  for (uint32_t i = 0; i < s->nrec; i++) {
    rec_t *r = rec_at(s, i);
    if (r->state != R_BUSY) continue;
    fuse_reply_err(r->req, EIO);
    r->state = R_ANSWERING; /* never FREE again: not reused, JS replies are refused */
    r->gen++;
  }
  pthread_mutex_unlock(&s->rlock);
}

/* ---------- slots ---------- */

slot_t *slot_get(session_t *s) {
  pthread_mutex_lock(&s->slock);
  slot_t *sl = s->free_slots;
  if (sl) {
    s->free_slots = sl->next_free;
    pthread_mutex_unlock(&s->slock);
    return sl;
  }
  if (s->nslots == s->slots_cap) {
    uint32_t cap = s->slots_cap ? s->slots_cap * 2 : 64;
    slot_t **n = realloc(s->slots, cap * sizeof(*n));
    if (!n) goto fail;
    s->slots = n;
    s->slots_cap = cap;
  }
  sl = calloc(1, sizeof(*sl));
  if (!sl) goto fail;
  if (posix_memalign((void **)&sl->mem, 4096, s->slot_size) != 0) {
    free(sl);
    goto fail;
  }
  atomic_init(&sl->refs, 1);
  sl->idx = s->nslots;
  s->slots[s->nslots++] = sl;
  pthread_mutex_unlock(&s->slock);
  return sl;
fail:
  pthread_mutex_unlock(&s->slock);
  return NULL;
}

void slot_put(session_t *s, slot_t *sl) {
  pthread_mutex_lock(&s->slock);
  sl->next_free = s->free_slots;
  s->free_slots = sl;
  pthread_mutex_unlock(&s->slock);
}

slot_t *slot_at(session_t *s, uint32_t idx) {
  pthread_mutex_lock(&s->slock);
  slot_t *sl = idx < s->nslots ? s->slots[idx] : NULL;
  pthread_mutex_unlock(&s->slock);
  return sl;
}

void slot_unref(slot_t *sl) {
  if (atomic_fetch_sub(&sl->refs, 1) == 1) {
    free(sl->mem);
    free(sl);
  }
}

/* ---------- inodes ---------- */

static uint64_t hash_path(const char *p) {
  uint64_t h = 1469598103934665603ull;
  for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}

static inode_t *inode_find(session_t *s, const char *path) {
  for (inode_t *n = s->buckets[hash_path(path) & (s->nbuckets - 1)]; n; n = n->hnext)
    if (strcmp(n->path, path) == 0) return n;
  return NULL;
}

static void inode_hash_add(session_t *s, inode_t *n) {
  uint64_t b = hash_path(n->path) & (s->nbuckets - 1);
  n->hnext = s->buckets[b];
  s->buckets[b] = n;
}

static void inode_hash_del(session_t *s, inode_t *n) {
  inode_t **pp = &s->buckets[hash_path(n->path) & (s->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->hnext)
    if (*pp == n) {
      *pp = n->hnext;
      return;
    }
}

static int inode_grow_hash(session_t *s) {
  uint64_t nb = s->nbuckets * 2;
  inode_t **b = calloc(nb, sizeof(*b));
  if (!b) return -1;
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = nb;
  for (uint64_t i = 0; i < s->ninodes; i++)
    if (s->inodes[i]->path[0]) inode_hash_add(s, s->inodes[i]);
  return 0;
}

static inode_t *inode_add(session_t *s, const char *path) {
  if (s->ninodes == s->inodes_cap) {
    uint64_t cap = s->inodes_cap ? s->inodes_cap * 2 : 64;
    inode_t **n = realloc(s->inodes, cap * sizeof(*n));
    if (!n) return NULL;
    s->inodes = n;
    s->inodes_cap = cap;
  }
  if (s->ninodes >= s->nbuckets && inode_grow_hash(s) != 0) return NULL;
  inode_t *n = calloc(1, sizeof(*n));
  if (!n || !(n->path = strdup(path))) {
    free(n);
    return NULL;
  }
  n->ino = s->ninodes + 1;
  n->pver = 1;
  s->inodes[s->ninodes++] = n;
  inode_hash_add(s, n);
  return n;
}

static inode_t *inode_by_ino(session_t *s, uint64_t ino) {
  return ino >= 1 && ino <= s->ninodes ? s->inodes[ino - 1] : NULL;
}

char *inode_child_path(session_t *s, uint64_t parent, const char *name) {
  pthread_mutex_lock(&s->ilock);
  inode_t *p = inode_by_ino(s, parent);
  char *out = NULL;
  if (p && p->path[0]) {
    size_t pl = strlen(p->path), nl = strlen(name);
    int root = pl == 1;
    out = malloc(pl + nl + 2);
    if (out) {
      memcpy(out, p->path, pl);
      size_t at = root ? 1 : pl;
      if (!root) out[at++] = '/';
      memcpy(out + at, name, nl + 1);
    }
  }
  pthread_mutex_unlock(&s->ilock);
  return out;
}

char *inode_path_dup(session_t *s, uint64_t ino) {
  pthread_mutex_lock(&s->ilock);
  inode_t *n = inode_by_ino(s, ino);
  char *out = n && n->path[0] ? strdup(n->path) : NULL;
  pthread_mutex_unlock(&s->ilock);
  return out;
}

/* The ino for path (created on first sight); add_lookup counts a kernel lookup reference. */
uint64_t inode_get(session_t *s, const char *path, int add_lookup) {
  pthread_mutex_lock(&s->ilock);
  inode_t *n = inode_find(s, path);
  if (!n) n = inode_add(s, path);
  uint64_t ino = 0;
  if (n) {
    if (add_lookup) n->nlookup++;
    ino = n->ino;
  }
  pthread_mutex_unlock(&s->ilock);
  return ino;
}

void inode_forget(session_t *s, uint64_t ino, uint64_t count) {
  pthread_mutex_lock(&s->ilock);
  inode_t *n = inode_by_ino(s, ino);
  if (n) n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
  pthread_mutex_unlock(&s->ilock);
}

/* After a successful rename: entries at `to` (and below) lose their path, entries at `from` (and
 * below) move. Their inos stay. */
void inode_rename(session_t *s, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to);
  pthread_mutex_lock(&s->ilock);
  for (uint64_t i = 0; i < s->ninodes; i++) {
    inode_t *n = s->inodes[i];
    if (strncmp(n->path, to, tl) == 0 && (n->path[tl] == 0 || n->path[tl] == '/')) {
      inode_hash_del(s, n);
      n->path[0] = 0; /* stale: keeps its ino, resolves to nothing */
      n->pver++;
    }
  }
  for (uint64_t i = 0; i < s->ninodes; i++) {
    inode_t *n = s->inodes[i];
    if (!n->path[0] || strncmp(n->path, from, fl) != 0 || (n->path[fl] != 0 && n->path[fl] != '/')) continue;
    size_t rest = strlen(n->path + fl);
    char *np = malloc(tl + rest + 1);
    if (!np) continue;
    memcpy(np, to, tl);
    memcpy(np + tl, n->path + fl, rest + 1);
    inode_hash_del(s, n);
    free(n->path);
    n->path = np;
    n->pver++;
    inode_hash_add(s, n);
  }
  pthread_mutex_unlock(&s->ilock);
}

/* JS thread: the path of ino as a JS string when JS has not seen this version of it (returns 1),
 * else 0. Stale inodes send "" (their requests fail ENOENT/ESTALE in JS). */
int inode_path_for_js(session_t *s, uint64_t ino, napi_env env, napi_value *out) {
  int sent = 0;
  pthread_mutex_lock(&s->ilock);
  inode_t *n = inode_by_ino(s, ino);
  if (n && n->sent != n->pver) {
    if (napi_create_string_utf8(env, n->path, NAPI_AUTO_LENGTH, out) == napi_ok) {
      n->sent = n->pver;
      sent = 1;
    }
  }
  pthread_mutex_unlock(&s->ilock);
  return sent;
}

int tables_init(session_t *s) {
  s->nbuckets = 64;
  s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
  if (!s->buckets) return -1;
  return inode_add(s, "/") ? 0 : -1;
}

void tables_free(session_t *s) {
  for (uint32_t c = 0; c < REC_MAX_CHUNKS && s->chunks[c]; c++) {
    for (uint32_t i = 0; i < REC_CHUNK; i++) {
      free(s->chunks[c][i].name);
      free(s->chunks[c][i].name2);
    }
    free(s->chunks[c]);
  }
  for (uint32_t i = 0; i < s->nslots; i++) slot_unref(s->slots[i]);
  free(s->slots);
  for (uint64_t i = 0; i < s->ninodes; i++) {
    free(s->inodes[i]->path);
    free(s->inodes[i]);
  }
  free(s->inodes);
  free(s->buckets);
}
