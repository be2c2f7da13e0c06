/* sw_test_db.h — scratch SQLite journals for the C tests that open one (test_journal.c,
 * test_history.c): a private directory per test, and reads and writes through a second,
 * independent connection, which see what another process would (committed state only).
 * Header-only, like sw_test.h.
 */
#ifndef SW_TEST_DB_H
#define SW_TEST_DB_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mem.h"

struct tmp_db {
    char dir[64];
    char path[128]; /* dir/steward.db */
};

/* A fresh directory under /tmp named after prefix (e.g. "sw_journal"); aborts on failure. */
static inline void tmp_db_make_named(struct tmp_db *t, const char *prefix)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/%s_XXXXXX", prefix);
    if (mkdtemp(t->dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(t->path, sizeof(t->path), "%s/steward.db", t->dir);
}

/* Removes the database, its WAL, shared memory and rollback files, and the directory. */
static inline void tmp_db_remove(struct tmp_db *t)
{
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < SW_ARRAY_LEN(suffixes); i++) {
        char file[160];
        snprintf(file, sizeof(file), "%s%s", t->path, suffixes[i]);
        unlink(file);
    }
    rmdir(t->dir);
}

/* One integer from a second connection; -1 when the query fails or returns no row. */
static inline int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t value = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return value;
}

/* Runs sql through a second connection; SQLite's code (errors printed). */
static inline int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "    raw_exec: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

#endif /* SW_TEST_DB_H */
