/* vstor libfuse 3 front end: shared declarations.
 *
 * Invariants:
 *   - libfuse worker threads never call into JS and never wait for it: they turn a request into a
 *     record, queue it, and wake the JS thread at most once per drained queue (threadsafe function);
 *   - a record is answered exactly once: claim() moves it BUSY -> ANSWERING under the record lock,
 *     so a late or duplicate JS reply and the end-of-session sweep can never both reply;
 *   - fuse_reply_* runs only under the session's read lock while it is alive, so no reply touches a
 *     destroyed fuse_session;
 *   - data slots (1 MiB buffers handed to JS as Buffers) are freed only when both the session and
 *     every JS Buffer over them are gone (refcount), so JS can never see freed memory.
 */
#ifndef VSTOR_FUSE3_H
#define VSTOR_FUSE3_H

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Requests handed to JS (descriptor op codes; mirrored in src/agent/frontend/fuse3-abi.ts). */
enum {
  OP_LOOKUP = 1,
  OP_GETATTR,
  OP_SETATTR,
  OP_READDIR,
  OP_OPEN,
  OP_RELEASE,
  OP_READ,
  OP_WRITE,
  OP_FLUSH,
  OP_FSYNC,
  OP_STATFS,
  OP_FALLOCATE,
  OP_LSEEK,
  OP_CREATE,
  OP_MKNOD,
  OP_MKDIR,
  OP_UNLINK,
  OP_RMDIR,
  OP_RENAME,
  OP_SYMLINK,
  OP_LINK,
  OP_READLINK,
  EV_MOUNTED = 64, /* init done: negotiated connection parameters */
  EV_FAILED,       /* mount(2) failed: errno, message */
  EV_ENDED,        /* the session loop ended (unmounted, aborted or failed) */
  EV_UNBLOCKED,    /* native map: F_INO disk, F_FH block id: no native request in flight there any more */
  EV_DEVERR,       /* native map: F_INO disk, F_FH device, F_OFF, F_LEN, F_A errno: a device I/O error */
};

/* Descriptor fields (Float64Array, STRIDE doubles per request). */
enum {
  F_ID = 0,  /* record id (index + generation) */
  F_OP,      /* op code */
  F_INO,     /* inode (parent for name ops) */
  F_FH,      /* file handle (the fd JS returned from open/create) */
  F_OFF,     /* offset / setattr size */
  F_LEN,     /* length / size */
  F_A,       /* flags, mode, whence, datasync, to_set */
  F_B,       /* mode, rdev, uid */
  F_C,       /* gid */
  F_D,       /* atime ms */
  F_E,       /* mtime ms */
  F_SLOT,    /* data slot index (read/write) or -1 */
  F_PATH,    /* index into the batch's strings: path of F_INO when JS has not seen it, else -1 */
  F_NAME,    /* index into strings: the op's own path (lookup/create/... and rename/link source) */
  F_NAME2,   /* index into strings: second path (rename/link destination, symlink target) */
  F_SPARE,
  STRIDE = 16
};

/* Scratch fields (Float64Array) JS fills before replyAttr/replyEntry/replyCreate/replyStatfs. */
enum { SC_MODE = 0, SC_UID, SC_GID, SC_SIZE, SC_BLOCKS, SC_BLKSIZE, SC_NLINK, SC_RDEV, SC_ATIME, SC_MTIME, SC_CTIME, SC_COUNT };
enum { V_BSIZE = 0, V_FRSIZE, V_BLOCKS, V_BFREE, V_BAVAIL, V_FILES, V_FFREE, V_FAVAIL, V_FSID, V_FLAG, V_NAMEMAX, V_COUNT };
#define SCRATCH_MIN 16

enum { R_FREE = 0, R_BUSY, R_ANSWERING };
enum { ST_MOUNTING = 0, ST_MOUNTED, ST_DRAINING, ST_UNMOUNTING, ST_ENDED };

#define REC_CHUNK_BITS 10
#define REC_CHUNK (1u << REC_CHUNK_BITS)
#define REC_MAX_CHUNKS 4096 /* 4M records in flight at most */
#define REC_IDX_BITS 22
#define REC_IDX_SPAN 4194304.0 /* 2^22 */

typedef struct slot {
  char *mem;
  uint32_t idx;
  atomic_int refs; /* session + one per JS Buffer over mem */
  struct slot *next_free;
} slot_t;

typedef struct rec {
  fuse_req_t req;
  uint32_t idx, gen;
  uint8_t op, state, drain;
  uint64_t ino, fh;
  int64_t off;
  uint64_t len;
  double a, b, c, d, e; /* op-specific (see F_A..F_E) */
  slot_t *slot;
  char *name, *name2; /* malloc'd paths for name ops */
  struct rec *next;   /* queue link / free list */
} rec_t;

typedef struct dirh {
  pthread_mutex_t lock;
  char **names; /* ".", "..", then the JS names */
  uint8_t *types;
  uint64_t *inos;
  uint32_t count;
  int filled;
} dirh_t;

typedef struct inode {
  uint64_t ino, nlookup;
  char *path;
  uint32_t pver, sent; /* path version, last version sent to JS */
  struct inode *hnext;
} inode_t;

typedef struct cfg {
  double entry_timeout, attr_timeout, negative_timeout;
  unsigned max_write, max_read, max_background, congestion_threshold;
  unsigned max_threads, max_idle_threads;
  int clone_fd, direct_io, parallel_direct_writes, splice_read, splice_write, async_dio, debug;
} cfg_t;

/* Something a worker tells JS (native map events), queued under qlock. */
typedef struct note {
  double op, ino, fh, off, len, a, b;
  struct note *next;
} note_t;

typedef struct nmap nmap_t; /* nmap.h */

typedef struct conninfo {
  unsigned proto_major, proto_minor, capable, want, max_write, max_read, max_background, congestion_threshold;
} conninfo_t;

typedef struct session {
  atomic_int refs; /* JS handle + loop thread + threadsafe function */
  cfg_t cfg;
  char *mnt;
  char *mnt_id;    /* "major:minor" of our mount, from mountinfo after mount(2) */
  struct fuse_session *se;
  pthread_t loop_thread;
  size_t slot_size;

  /* JS side (touched on the JS thread only, except tsfn calls) */
  napi_env env;
  napi_threadsafe_function tsfn;
  napi_async_context actx;
  napi_ref desc_ref, scratch_ref;
  double *desc, *scratch;
  uint32_t desc_cap; /* records per JS call */
  int js_hold;       /* the JS thread's own acquire of tsfn */
  int cleanup_hooked;

  /* queue of records and events for JS (qlock) */
  pthread_mutex_t qlock;
  rec_t *qhead, *qtail;
  int wake_pending, js_gone;
  int ev_mounted, ev_failed, ev_ended;
  int fail_errno, end_rc;
  char fail_msg[512];
  conninfo_t conn;
  note_t *nhead, *ntail;

  /* native mapped path (nmap.h); freed when the loop ended, under the alive write lock */
  nmap_t *nm;
  atomic_int nat_inflight; /* native requests not answered yet */
  atomic_int nat_off;      /* unmount drain: new requests go to JS, so nat_inflight only falls */
  atomic_ullong nat_reads, nat_writes, nat_to_js, nat_queued, nat_errors; /* outlive nm */
  atomic_ullong nat_written; /* writes finished, counted before they leave the flight list (mapWritten) */

  /* records (rlock) */
  pthread_mutex_t rlock;
  rec_t *chunks[REC_MAX_CHUNKS];
  uint32_t nrec;
  rec_t *free_recs;
  int state;
  uint32_t drain_left;
  int force_unmount;

  /* slots (slock) */
  pthread_mutex_t slock;
  slot_t **slots;
  uint32_t nslots, slots_cap;
  slot_t *free_slots;

  /* inodes (ilock) */
  pthread_mutex_t ilock;
  inode_t **inodes; /* by ino - 1 */
  uint64_t ninodes, inodes_cap;
  inode_t **buckets;
  uint64_t nbuckets;

  /* replies vs teardown */
  pthread_rwlock_t alive;
  int dead;
} session_t;

/* tables.c */
int tables_init(session_t *s);
void tables_free(session_t *s);
rec_t *rec_new(session_t *s, fuse_req_t req, int op);
rec_t *rec_claim(session_t *s, double id);
void rec_finish(session_t *s, rec_t *r);
double rec_id(const rec_t *r);
void rec_sweep(session_t *s);
slot_t *slot_get(session_t *s);
slot_t *slot_at(session_t *s, uint32_t idx);
void slot_unref(slot_t *sl);
void slot_put(session_t *s, slot_t *sl); /* back to the free pool */
char *inode_child_path(session_t *s, uint64_t parent, const char *name);
char *inode_path_dup(session_t *s, uint64_t ino);
uint64_t inode_get(session_t *s, const char *path, int add_lookup);
void inode_forget(session_t *s, uint64_t ino, uint64_t n);
void inode_rename(session_t *s, const char *from, const char *to);
int inode_path_for_js(session_t *s, uint64_t ino, napi_env env, napi_value *out);

/* ops.c */
extern const struct fuse_lowlevel_ops vstor_ll_ops;
void enqueue(session_t *s, rec_t *r);
void dirh_reply(session_t *s, fuse_req_t req, dirh_t *dh, size_t size, off_t off);
void dirh_free(dirh_t *dh);

/* session.c */
void session_unref(session_t *s);
int session_start(session_t *s);
void session_unmount(session_t *s, int force);
void session_wake(session_t *s); /* call with qlock held */
void start_umount_locked(session_t *s); /* call with rlock held */
void session_drain_check(session_t *s); /* the last native request ended while draining */
void post_note(session_t *s, int op, double ino, double fh, double off, double len, double a, double b);

/* log capture (addon.c) */
void log_capture_begin(char *buf, size_t len);
void log_capture_end(void);

#endif
