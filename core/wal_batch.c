#include "wal_batch.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VFS_NAME "steward-wal-batch"
/* A WAL frame is a header of this size, written alone, then the page. */
#define FRAME_HEADER_BYTES 24
/* A batch is written out when it would grow past this: a large transaction then costs one
 * call per 64 KiB. It must stay under 128 KiB: the unix VFS hands a write to the kernel
 * with its length masked to 17 bits (os_unix.c, seekAndWriteFd), so a write of exactly
 * 128 KiB would write nothing and fail as "disk full". */
#define BATCH_MAX_BYTES (64 * 1024)
#define BATCH_FIRST_BYTES (16 * 1024)

struct batch_file {
    sqlite3_file base;
    sqlite3_file *real; /* the wrapped file, in the memory right after this struct */
    sqlite3_filename name;
    bool is_wal;
    /* Main database: its WAL while both are open; the list of open main databases.
     * WAL: its main database. Linked and unlinked under dbs_lock. */
    struct batch_file *wal;
    struct batch_file *next_db;
    struct batch_file *db;
    /* WAL: writes not handed to the kernel yet, contiguous from off. */
    unsigned char *buf;
    size_t len, cap;
    sqlite3_int64 off;
    bool commit_page_next;
};

/* SQLite's VFS registry is process-wide, so the VFS and what it wraps are too. */
static sqlite3_vfs batch_vfs;
static sqlite3_vfs *real_vfs;
static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static bool registered;
static pthread_mutex_t dbs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct batch_file *open_dbs;

static sqlite3_file *real_of(sqlite3_file *file)
{
    return ((struct batch_file *)file)->real;
}

static int batch_flush(struct batch_file *f)
{
    if (f == NULL || f->len == 0)
        return SQLITE_OK;
    size_t len = f->len;
    f->len = 0;
    return f->real->pMethods->xWrite(f->real, f->buf, (int)len, f->off);
}

/* The frame header's second word is the database size after a commit, 0 otherwise. */
static bool frame_header_commits(const void *data)
{
    const unsigned char *p = data;
    return (p[4] | p[5] | p[6] | p[7]) != 0;
}

static bool batch_reserve(struct batch_file *f, size_t need)
{
    if (need <= f->cap)
        return true;
    size_t cap = f->cap ? f->cap : BATCH_FIRST_BYTES;
    while (cap < need)
        cap *= 2;
    unsigned char *buf = realloc(f->buf, cap);
    if (buf == NULL)
        return false;
    f->buf = buf;
    f->cap = cap;
    return true;
}

static int wal_write(struct batch_file *f, const void *data, int amt, sqlite3_int64 off)
{
    size_t n = (size_t)amt;
    bool joins = f->len > 0 && off == f->off + (sqlite3_int64)f->len &&
                 f->len + n <= BATCH_MAX_BYTES;
    int rc = joins ? SQLITE_OK : batch_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    bool commit_page = f->commit_page_next;
    f->commit_page_next = n == FRAME_HEADER_BYTES && frame_header_commits(data);
    if (n > BATCH_MAX_BYTES || !batch_reserve(f, f->len + n))
        return f->real->pMethods->xWrite(f->real, data, amt, off);
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return commit_page ? batch_flush(f) : SQLITE_OK;
}

/* ---- linking a WAL to its database ---------------------------------------------------- */

static void link_file(struct batch_file *f, int flags)
{
    pthread_mutex_lock(&dbs_lock);
    if (flags & SQLITE_OPEN_MAIN_DB) {
        f->next_db = open_dbs;
        open_dbs = f;
    } else if (f->is_wal && f->name != NULL) {
        sqlite3_filename db_name = sqlite3_filename_database(f->name);
        for (struct batch_file *db = open_dbs; db != NULL; db = db->next_db) {
            if (db->name == db_name && db->wal == NULL) {
                db->wal = f;
                f->db = db;
                break;
            }
        }
    }
    pthread_mutex_unlock(&dbs_lock);
}

static void unlink_file(struct batch_file *f)
{
    pthread_mutex_lock(&dbs_lock);
    if (f->db != NULL)
        f->db->wal = NULL;
    if (f->wal != NULL)
        f->wal->db = NULL;
    for (struct batch_file **at = &open_dbs; *at != NULL; at = &(*at)->next_db) {
        if (*at == f) {
            *at = f->next_db;
            break;
        }
    }
    pthread_mutex_unlock(&dbs_lock);
}

/* ---- file methods: the WAL's writes are batched; everything else passes through after
 * the batch is written ------------------------------------------------------------------ */

static int f_close(sqlite3_file *file)
{
    struct batch_file *f = (struct batch_file *)file;
    int rc = batch_flush(f);
    unlink_file(f);
    int close_rc = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : close_rc;
}

static int f_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    int rc = batch_flush((struct batch_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xRead(real_of(file), buf, amt, off);
}

static int f_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct batch_file *f = (struct batch_file *)file;
    if (f->is_wal)
        return wal_write(f, buf, amt, off);
    return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int f_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    int rc = batch_flush((struct batch_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xTruncate(real_of(file), size);
}

static int f_sync(sqlite3_file *file, int flags)
{
    int rc = batch_flush((struct batch_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xSync(real_of(file), flags);
}

static int f_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    int rc = batch_flush((struct batch_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xFileSize(real_of(file), size);
}

static int f_lock(sqlite3_file *file, int level)
{
    return real_of(file)->pMethods->xLock(real_of(file), level);
}

static int f_unlock(sqlite3_file *file, int level)
{
    return real_of(file)->pMethods->xUnlock(real_of(file), level);
}

static int f_check_reserved_lock(sqlite3_file *file, int *out)
{
    return real_of(file)->pMethods->xCheckReservedLock(real_of(file), out);
}

static int f_file_control(sqlite3_file *file, int op, void *arg)
{
    int rc = batch_flush((struct batch_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xFileControl(real_of(file), op, arg);
}

static int f_sector_size(sqlite3_file *file)
{
    return real_of(file)->pMethods->xSectorSize(real_of(file));
}

static int f_device_characteristics(sqlite3_file *file)
{
    return real_of(file)->pMethods->xDeviceCharacteristics(real_of(file));
}

static int f_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    return real_of(file)->pMethods->xShmMap(real_of(file), page, size, extend, out);
}

/* The database's WAL locks change at the start and end of transactions: whatever its WAL
 * holds is written first, so a rolled-back transaction's spilled frames are in the file
 * before the write lock goes to another connection, as they would be without batching. */
static int f_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    int rc = batch_flush(((struct batch_file *)file)->wal);
    return rc != SQLITE_OK ? rc
                           : real_of(file)->pMethods->xShmLock(real_of(file), offset, n, flags);
}

/* SQLite calls this between its reads or writes of the two copies of the WAL-index header:
 * when it publishes a commit and when it starts reading. A commit's frames were written
 * after its last page already; this is the net for anything else held (it cannot report
 * an error, so it is not the path). */
static void f_shm_barrier(sqlite3_file *file)
{
    (void)batch_flush(((struct batch_file *)file)->wal);
    real_of(file)->pMethods->xShmBarrier(real_of(file));
}

static int f_shm_unmap(sqlite3_file *file, int delete_flag)
{
    return real_of(file)->pMethods->xShmUnmap(real_of(file), delete_flag);
}

static int f_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
    return real_of(file)->pMethods->xFetch(real_of(file), off, amt, out);
}

static int f_unfetch(sqlite3_file *file, sqlite3_int64 off, void *page)
{
    return real_of(file)->pMethods->xUnfetch(real_of(file), off, page);
}

#define FILE_METHODS(version)                                                                 \
    {                                                                                         \
        .iVersion = (version), .xClose = f_close, .xRead = f_read, .xWrite = f_write,         \
        .xTruncate = f_truncate, .xSync = f_sync, .xFileSize = f_file_size, .xLock = f_lock,  \
        .xUnlock = f_unlock, .xCheckReservedLock = f_check_reserved_lock,                     \
        .xFileControl = f_file_control, .xSectorSize = f_sector_size,                         \
        .xDeviceCharacteristics = f_device_characteristics, .xShmMap = f_shm_map,             \
        .xShmLock = f_shm_lock, .xShmBarrier = f_shm_barrier, .xShmUnmap = f_shm_unmap,       \
        .xFetch = f_fetch, .xUnfetch = f_unfetch,                                             \
    }

/* A wrapped file offers the methods of the version its real file offers, no more. */
static const sqlite3_io_methods file_methods[] = {FILE_METHODS(1), FILE_METHODS(2),
                                                  FILE_METHODS(3)};

/* ---- VFS methods: open wraps, the rest is the real VFS's ------------------------------- */

static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    struct batch_file *f = (struct batch_file *)file;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    const sqlite3_io_methods *real_methods = f->real->pMethods;
    if (real_methods == NULL) {
        f->base.pMethods = NULL;
        return rc;
    }
    int version = real_methods->iVersion;
    version = version < 1 ? 1 : version > 3 ? 3 : version;
    f->base.pMethods = &file_methods[version - 1];
    f->name = name;
    f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    link_file(f, flags);
    return rc;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *path)
{
    return real_vfs->xDlOpen(real_vfs, path);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void)
{
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *handle)
{
    real_vfs->xDlClose(real_vfs, handle);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int micros)
{
    return real_vfs->xSleep(real_vfs, micros);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int vfs_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int vfs_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr call)
{
    return real_vfs->xSetSystemCall(real_vfs, name, call);
}

static sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs *vfs, const char *name)
{
    return real_vfs->xGetSystemCall(real_vfs, name);
}

static const char *vfs_next_system_call(sqlite3_vfs *vfs, const char *name)
{
    return real_vfs->xNextSystemCall(real_vfs, name);
}

static void register_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL)
        return;
    int version = real_vfs->iVersion > 3 ? 3 : real_vfs->iVersion;
    batch_vfs = (sqlite3_vfs){
        .iVersion = version,
        .szOsFile = (int)sizeof(struct batch_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = VFS_NAME,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xDlOpen = vfs_dl_open,
        .xDlError = vfs_dl_error,
        .xDlSym = vfs_dl_sym,
        .xDlClose = vfs_dl_close,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_get_last_error,
        .xCurrentTimeInt64 = version >= 2 ? vfs_current_time_int64 : NULL,
        .xSetSystemCall = version >= 3 ? vfs_set_system_call : NULL,
        .xGetSystemCall = version >= 3 ? vfs_get_system_call : NULL,
        .xNextSystemCall = version >= 3 ? vfs_next_system_call : NULL,
    };
    registered = sqlite3_vfs_register(&batch_vfs, 0) == SQLITE_OK;
}

const char *sw_wal_batch_vfs(void)
{
    pthread_once(&register_once, register_vfs);
    return registered ? VFS_NAME : NULL;
}
