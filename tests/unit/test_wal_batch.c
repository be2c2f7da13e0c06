/* wal_batch: a commit's WAL frames reach the kernel in one write, and nothing another
 * connection, a killed process or a rolled-back transaction sees changes. Writes are
 * counted by replacing the unix VFS's write system calls (sqlite3_vfs.xSetSystemCall). */
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sw_test.h"
#include "sw_test_db.h"
#include "wal_batch.h"

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
static sqlite3_syscall_ptr real_pwrite, real_pwrite64;
static int wal_writes;

static bool fd_is_wal(int fd)
{
    char link[64], target[512];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 4)
        return false;
    target[n] = '\0';
    return strcmp(target + n - 4, "-wal") == 0;
}

static ssize_t counting_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    wal_writes += fd_is_wal(fd);
    return ((pwrite_fn)real_pwrite)(fd, buf, n, off);
}

static ssize_t counting_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    wal_writes += fd_is_wal(fd);
    return ((pwrite_fn)real_pwrite64)(fd, buf, n, off);
}

static void count_wal_writes(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    if (real_pwrite != NULL || real_pwrite64 != NULL || unix_vfs == NULL)
        return;
    real_pwrite = unix_vfs->xGetSystemCall(unix_vfs, "pwrite");
    real_pwrite64 = unix_vfs->xGetSystemCall(unix_vfs, "pwrite64");
    if (real_pwrite != NULL)
        unix_vfs->xSetSystemCall(unix_vfs, "pwrite", (sqlite3_syscall_ptr)counting_pwrite);
    if (real_pwrite64 != NULL)
        unix_vfs->xSetSystemCall(unix_vfs, "pwrite64", (sqlite3_syscall_ptr)counting_pwrite64);
}

static sqlite3 *open_wal(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) !=
            SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK) {
        fprintf(stderr, "open %s: %s\n", path, sqlite3_errmsg(db));
        abort();
    }
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "    %s: %s\n", sql, sqlite3_errmsg(db));
    return rc;
}

/* A WAL database with the table every test writes: keys indexed, values as blobs. */
static sqlite3 *open_table(const char *path, const char *vfs)
{
    sqlite3 *db = open_wal(path, vfs);
    if (exec(db, "CREATE TABLE IF NOT EXISTS t(k TEXT, v BLOB); "
                 "CREATE INDEX IF NOT EXISTS t_k ON t(k);") != SQLITE_OK)
        abort();
    return db;
}

/* 1 when a fresh connection finds the file intact. */
static int64_t integrity_ok(const char *path)
{
    return raw_int(path, "SELECT count(*) FROM pragma_integrity_check WHERE "
                         "integrity_check = 'ok'");
}

/* A commit that touches the table, its index and the schema's pages: rows of 400 bytes,
 * so 20 of them fill two table pages and grow the index. */
static const char commit_sql[] =
    "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
    "INSERT INTO t(k, v) SELECT hex(randomblob(16)), randomblob(400) FROM n; COMMIT;";

static int writes_of_one_commit(const char *vfs)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    sqlite3 *db = open_table(t.path, vfs);
    SW_ASSERT_EQ(exec(db, commit_sql), SQLITE_OK);
    wal_writes = 0;
    SW_ASSERT_EQ(exec(db, commit_sql), SQLITE_OK);
    int writes = wal_writes;
    sqlite3_close(db);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 40);
    tmp_db_remove(&t);
    return writes;
}

SW_TEST(a_commit_is_one_write_to_the_wal)
{
    count_wal_writes();
    SW_ASSERT(real_pwrite != NULL || real_pwrite64 != NULL);
    const char *vfs = sw_wal_batch_vfs();
    SW_ASSERT(vfs != NULL);
    /* Without batching the same commit is two writes per frame. */
    int plain = writes_of_one_commit(NULL);
    int batched = writes_of_one_commit(vfs);
    SW_ASSERT(plain >= 6);
    SW_ASSERT_EQ(batched, 1);
}

SW_TEST(another_connection_sees_every_commit_when_it_returns)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    sqlite3 *writer = open_table(t.path, sw_wal_batch_vfs());
    for (int i = 1; i <= 30; i++) {
        SW_ASSERT_EQ(exec(writer, commit_sql), SQLITE_OK);
        SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 20 * i);
    }
    sqlite3_close(writer);
    tmp_db_remove(&t);
}

SW_TEST(a_commit_survives_the_process_being_killed)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    pid_t pid = fork();
    SW_ASSERT(pid >= 0);
    if (pid == 0) {
        sqlite3 *db = open_table(t.path, sw_wal_batch_vfs());
        for (int i = 0; i < 25; i++)
            if (exec(db, commit_sql) != SQLITE_OK)
                _exit(1);
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    SW_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    SW_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 25 * 20);
    SW_ASSERT_EQ(integrity_ok(t.path), 1);
    tmp_db_remove(&t);
}

/* A transaction larger than its page cache writes (spills) frames to the WAL before it
 * commits; rolled back, those frames are garbage past the WAL's end, and the next writer,
 * another connection, writes its own frames over them. Frames still held back would land
 * on that writer's frames later: they must be written before the write lock is given up. */
SW_TEST(a_rolled_back_spill_never_lands_on_a_later_commit)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    sqlite3 *a = open_table(t.path, sw_wal_batch_vfs());
    SW_ASSERT_EQ(exec(a, "PRAGMA cache_size=5"), SQLITE_OK);
    SW_ASSERT_EQ(exec(a, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                         "FROM n WHERE i < 150) INSERT INTO t(k, v) SELECT "
                         "hex(randomblob(16)), randomblob(900) FROM n;"),
                 SQLITE_OK);
    SW_ASSERT_EQ(exec(a, "ROLLBACK"), SQLITE_OK);

    sqlite3 *b = open_wal(t.path, NULL);
    for (int i = 0; i < 5; i++)
        SW_ASSERT_EQ(exec(b, commit_sql), SQLITE_OK);
    sqlite3_close(b);
    SW_ASSERT_EQ(exec(a, commit_sql), SQLITE_OK);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 6 * 20);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t WHERE length(v) = 400"), 6 * 20);
    sqlite3_close(a);
    /* Reopened from the file alone: the WAL's checksums must chain through every commit. */
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 6 * 20);
    SW_ASSERT_EQ(integrity_ok(t.path), 1);
    tmp_db_remove(&t);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Frames written outside a commit (a spill) are held no longer than until the connection
 * next reads the WAL-index or changes its WAL locks: before the write lock could go to
 * another connection. */
SW_TEST(held_frames_are_written_before_the_wal_locks_change)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    sqlite3 *db = open_table(t.path, sw_wal_batch_vfs());
    SW_ASSERT_EQ(exec(db, commit_sql), SQLITE_OK);
    sqlite3_file *wal = NULL;
    SW_ASSERT_EQ(sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal),
                 SQLITE_OK);
    SW_ASSERT(wal != NULL && wal->pMethods != NULL);
    char wal_path[160];
    snprintf(wal_path, sizeof(wal_path), "%s-wal", t.path);
    long long end = file_size(wal_path);
    SW_ASSERT(end > 0);
    /* A frame that commits nothing, past the end: SQLite ignores it when reading. */
    unsigned char header[24] = {0, 0, 0, 2}, page[4096] = {0};
    SW_ASSERT_EQ(wal->pMethods->xWrite(wal, header, sizeof(header), end), SQLITE_OK);
    SW_ASSERT_EQ(wal->pMethods->xWrite(wal, page, sizeof(page), end + 24), SQLITE_OK);
    SW_ASSERT_EQ(file_size(wal_path), end);
    SW_ASSERT_EQ(exec(db, "SELECT count(*) FROM t"), SQLITE_OK);
    SW_ASSERT_EQ(file_size(wal_path), end + 24 + 4096);
    SW_ASSERT_EQ(exec(db, commit_sql), SQLITE_OK);
    sqlite3_close(db);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 40);
    tmp_db_remove(&t);
}

/* 600 rows of 1 KiB in one commit: more than the largest single write the unix VFS can
 * make (it masks a length to 17 bits), so the commit must go out in several. */
SW_TEST(a_commit_larger_than_128k_is_written_whole)
{
    struct tmp_db t;
    tmp_db_make_named(&t, "sw_wal_batch");
    sqlite3 *db = open_table(t.path, sw_wal_batch_vfs());
    SW_ASSERT_EQ(exec(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                          "FROM n WHERE i < 600) INSERT INTO t(k, v) SELECT "
                          "hex(randomblob(16)), randomblob(1024) FROM n; COMMIT;"),
                 SQLITE_OK);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM t"), 600);
    sqlite3_close(db);
    SW_ASSERT_EQ(integrity_ok(t.path), 1);
    tmp_db_remove(&t);
}

SW_TEST_MAIN()
