/* wal_batch.h — an SQLite VFS that hands each commit's WAL frames to the kernel in one write.
 *
 * SQLite appends a commit to the WAL one frame at a time, each frame as two writes (a
 * 24-byte header, then the page): a journal commit touching 6 pages is 12 pwrite calls, and
 * each costs a system call's fixed price on ext4 whatever its size (on the 2-core machine
 * of bench_market.sh, pwrite64 was 9% of steward's CPU over the 50-acquire burst). This VFS
 * wraps the default one and collects the contiguous writes to a WAL file in memory, then
 * writes them at once:
 *   - right after the page of a commit frame (so the commit's error, if any, is that
 *     write's error and SQLite fails the commit as it would have);
 *   - before anything else touches the WAL file (read, size, sync, truncate, close, file
 *     control), so this connection never sees the file differ from what it wrote;
 *   - before the database's shared-memory locks change or its WAL-index header is
 *     published: other connections read frames only after that, and a transaction that
 *     spilled frames and rolled back has them on disk before it gives the write lock up,
 *     as without this VFS.
 * The bytes, their offsets and their order in the file are what SQLite asked for; only the
 * number of system calls changes. The durability is the journal's (synchronous=NORMAL): a
 * commit is in the kernel when it returns, so it survives the process being killed.
 * Other files (the database, rollback journals, temporary files) pass straight through.
 */
#ifndef SW_WAL_BATCH_H
#define SW_WAL_BATCH_H

/* The VFS's name, to pass to sqlite3_open_v2. The first call registers it (thread-safe),
 * wrapping the default VFS of that moment; later calls return the same name. NULL if it
 * could not be registered: open with the default VFS then. The string is static. */
const char *sw_wal_batch_vfs(void);

#endif /* SW_WAL_BATCH_H */
