/* Session life: mount on a thread of our own, run libfuse's multithreaded loop there, drain and
 * unmount on request, answer what is left and tell JS when the loop has ended.
 *
 * Invariants:
 *   - JS is woken through the threadsafe function at most once per drained queue (wake_pending);
 *     no thread calls the threadsafe function once JS is gone (js_gone, checked under qlock);
 *   - unmount: requests in flight when it was asked for are answered first (drain), then the mount
 *     is removed; a mount still busy (open files) has its connection aborted (MNT_FORCE) and is
 *     detached, so the loop always ends;
 *   - we only unmount the mount we made: the mountinfo entry at our mountpoint must carry our
 *     device number.
 */
#include "fuse3.h"
#include "nmap.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

void session_unref(session_t *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  nmap_free(s); /* the loop never ran */
  for (note_t *n = s->nhead, *next; n; n = next) {
    next = n->next;
    free(n);
  }
  tables_free(s);
  pthread_mutex_destroy(&s->qlock);
  pthread_mutex_destroy(&s->rlock);
  pthread_mutex_destroy(&s->slock);
  pthread_mutex_destroy(&s->ilock);
  pthread_rwlock_destroy(&s->alive);
  free(s->mnt);
  free(s->mnt_id);
  free(s);
}

void session_wake(session_t *s) {
  if (s->wake_pending || s->js_gone) return;
  s->wake_pending = 1;
  napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
}

/* A worker's note for JS (dropped when out of memory: only a lost wakeup of a waiting block,
 * which then waits for the next note or the end of the session). */
void post_note(session_t *s, int op, double ino, double fh, double off, double len, double a, double b) {
  note_t *n = malloc(sizeof(*n));
  if (!n) return;
  *n = (note_t){op, ino, fh, off, len, a, b, NULL};
  pthread_mutex_lock(&s->qlock);
  if (s->ntail) s->ntail->next = n;
  else s->nhead = n;
  s->ntail = n;
  session_wake(s);
  pthread_mutex_unlock(&s->qlock);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *p) {
  char *o = p;
  for (; *p; p++) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 3;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

/* "major:minor" of the topmost mount at mnt, or NULL. */
static char *mount_id(const char *mnt) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return NULL;
  char *line = NULL, *found = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    /* id parent major:minor root mountpoint ... */
    char *save = NULL, *dev = NULL, *point = NULL;
    char *tok = strtok_r(line, " ", &save);
    for (int i = 0; tok && i < 5; i++, tok = strtok_r(NULL, " ", &save)) {
      if (i == 2) dev = tok;
      if (i == 4) point = tok;
    }
    if (!dev || !point) continue;
    unescape(point);
    if (strcmp(point, mnt) == 0) {
      free(found);
      found = strdup(dev);
    }
  }
  free(line);
  fclose(f);
  return found;
}

static int still_ours(session_t *s) {
  if (!s->mnt_id) return 1; /* could not identify it after mount(2): trust the path */
  char *id = mount_id(s->mnt);
  int ours = id && strcmp(id, s->mnt_id) == 0;
  free(id);
  return ours;
}

static void *umount_main(void *arg) {
  session_t *s = arg;
  if (still_ours(s) && umount2(s->mnt, 0) != 0 && errno == EBUSY) {
    /* Open files keep it busy: abort the connection (their I/O fails ENOTCONN), then detach. */
    umount2(s->mnt, MNT_FORCE);
    if (still_ours(s)) umount2(s->mnt, MNT_DETACH);
  }
  session_unref(s);
  return NULL;
}

/* rlock held. */
void start_umount_locked(session_t *s) {
  s->state = ST_UNMOUNTING;
  atomic_fetch_add(&s->refs, 1);
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (pthread_create(&t, &at, umount_main, s) != 0) {
    umount_main(s); /* last resort: inline */
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&at);
}

/* The last native request in flight ended while draining. */
void session_drain_check(session_t *s) {
  pthread_mutex_lock(&s->rlock);
  if (s->state == ST_DRAINING && s->drain_left == 0 && atomic_load(&s->nat_inflight) == 0) start_umount_locked(s);
  pthread_mutex_unlock(&s->rlock);
}

/* JS thread: drain what is in flight (JS records and native requests), then unmount (force: do
 * not wait for the drain). Requests arriving meanwhile are served, by JS only. */
void session_unmount(session_t *s, int force) {
  pthread_mutex_lock(&s->rlock);
  if (s->state == ST_MOUNTED) {
    atomic_store(&s->nat_off, 1);
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nrec; i++) {
      rec_t *r = &s->chunks[i >> REC_CHUNK_BITS][i & (REC_CHUNK - 1)];
      if (r->state == R_BUSY || r->state == R_ANSWERING) {
        r->drain = 1;
        n++;
      }
    }
    s->drain_left = n;
    s->state = ST_DRAINING;
    if (n == 0 && atomic_load(&s->nat_inflight) == 0) start_umount_locked(s);
  }
  if (force && s->state == ST_DRAINING) start_umount_locked(s);
  pthread_mutex_unlock(&s->rlock);
}

static void *loop_main(void *arg) {
  session_t *s = arg;
  char msg[sizeof(s->fail_msg)] = "";
  log_capture_begin(msg, sizeof(msg));
  int rc = fuse_session_mount(s->se, s->mnt);
  int err = errno;
  log_capture_end();
  if (rc != 0) {
    pthread_mutex_lock(&s->qlock);
    s->ev_failed = 1;
    s->fail_errno = err ? err : EIO;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", msg[0] ? msg : strerror(s->fail_errno));
    pthread_mutex_unlock(&s->qlock);
  } else {
    s->mnt_id = mount_id(s->mnt);
    pthread_mutex_lock(&s->rlock);
    if (s->state == ST_MOUNTING) s->state = ST_MOUNTED;
    pthread_mutex_unlock(&s->rlock);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(lc, (unsigned)s->cfg.clone_fd);
    fuse_loop_cfg_set_max_threads(lc, s->cfg.max_threads);
    fuse_loop_cfg_set_idle_threads(lc, s->cfg.max_idle_threads);
    rc = fuse_session_loop_mt(s->se, lc);
    fuse_loop_cfg_destroy(lc);
    /* A loop that ended on its own (fusermount -u, abort, error) takes the mount with it. */
    if (still_ours(s)) fuse_session_unmount(s->se);
  }
  pthread_rwlock_wrlock(&s->alive);
  s->dead = 1;
  nmap_free(s); /* every worker has ended: close our device fds now, before JS closes its own */
  pthread_rwlock_unlock(&s->alive);
  rec_sweep(s);
  pthread_mutex_lock(&s->rlock);
  s->state = ST_ENDED;
  pthread_mutex_unlock(&s->rlock);
  fuse_session_destroy(s->se);
  s->se = NULL;

  pthread_mutex_lock(&s->qlock);
  s->ev_ended = 1;
  s->end_rc = rc;
  session_wake(s);
  napi_threadsafe_function tsfn = s->tsfn;
  int gone = s->js_gone;
  pthread_mutex_unlock(&s->qlock);
  if (!gone) napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  session_unref(s);
  return NULL;
}

int session_start(session_t *s) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the loop and its workers take no signals */
  atomic_fetch_add(&s->refs, 1);
  int rc = pthread_create(&s->loop_thread, NULL, loop_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    atomic_fetch_sub(&s->refs, 1);
    return rc;
  }
  pthread_detach(s->loop_thread);
  return 0;
}
