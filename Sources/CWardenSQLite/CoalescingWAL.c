// A SQLite VFS that writes each commit's WAL frames with one pwrite instead of two per frame.
//
// SQLite appends a WAL frame as two writes: its 24-byte header, then the page. A group commit of
// five alerts is about fourteen frames: 28 pwrite calls, each header and page touching its own
// page-cache pages (a 4,120-byte frame straddles pages). Measured on this kind of machine (ext4,
// virtio): 20 us of CPU per commit for those writes, 4 us for the same bytes in one write.
//
// The VFS wraps the default one and changes nothing but WAL writes: contiguous ones collect in
// a buffer that goes out as one write
//   - right after the frame that ends a commit (its header carries the database size; SQLite
//     publishes a commit in the WAL index only after writing that frame, so readers never find
//     a committed frame that is still in the buffer),
//   - before any other operation on the WAL file (read, sync, truncate, size, lock, close,
//     file control, memory map), so SQLite itself never sees the file without its frames,
//   - when a write does not continue the buffer, or the buffer would pass its cap.
// A write error comes back from whichever call made the flush; the buffer is then dropped, as
// SQLite rewrites a failed transaction's frames.
#include "CWardenSQLite.h"

#include <sqlite3.h>
#include <string.h>

typedef struct CoalescingFile {
    sqlite3_file base;
    sqlite3_file *real;  // the wrapped VFS's file, in the same allocation, after this struct
    int isWAL;
    int flushAfterNextWrite;
    unsigned char *buffer;
    int length;
    int capacity;
    sqlite3_int64 start;  // file offset of buffer[0]
} CoalescingFile;

enum { maxBuffer = 4 << 20 };

static sqlite3_vfs coalescingVFS;
static sqlite3_vfs *wrappedVFS;

// The unix VFS writes at most 128 KiB - 1 per call: it masks the length with 0x1ffff (a length
// of exactly 128 KiB becomes 0 and fails as SQLITE_FULL). SQLite's own writes are a page at
// most; the buffer goes out in pieces that stay under that.
enum { writeChunk = 64 * 1024 };

static int flush(CoalescingFile *file) {
    int rc = SQLITE_OK;
    for (int done = 0; done < file->length && rc == SQLITE_OK; done += writeChunk) {
        int amount = file->length - done < writeChunk ? file->length - done : writeChunk;
        rc = file->real->pMethods->xWrite(file->real, file->buffer + done, amount, file->start + done);
    }
    file->length = 0;
    return rc;
}

static int walWrite(CoalescingFile *file, const void *data, int amount, sqlite3_int64 offset) {
    int rc;
    if (file->length > 0 && offset != file->start + file->length) {
        rc = flush(file);
        if (rc != SQLITE_OK) return rc;
    }
    if (file->length + amount > maxBuffer) {
        rc = flush(file);
        if (rc != SQLITE_OK) return rc;
        return file->real->pMethods->xWrite(file->real, data, amount, offset);
    }
    if (file->length + amount > file->capacity) {
        int capacity = file->capacity ? file->capacity : 64 * 1024;
        while (capacity < file->length + amount) capacity *= 2;
        unsigned char *grown = sqlite3_realloc64(file->buffer, (sqlite3_uint64)capacity);
        if (!grown) {
            rc = flush(file);
            if (rc != SQLITE_OK) return rc;
            return file->real->pMethods->xWrite(file->real, data, amount, offset);
        }
        file->buffer = grown;
        file->capacity = capacity;
    }
    if (file->length == 0) file->start = offset;
    memcpy(file->buffer + file->length, data, (size_t)amount);
    file->length += amount;
    if (file->flushAfterNextWrite) {
        // The page of the commit frame whose header came just before.
        file->flushAfterNextWrite = 0;
        return flush(file);
    }
    // A frame header is the only 24-byte write to a WAL; bytes 4-7 (the database size after
    // the commit) are non-zero only in the last frame of a commit.
    const unsigned char *bytes = data;
    if (amount == 24 && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0) file->flushAfterNextWrite = 1;
    return SQLITE_OK;
}

// Every method but xWrite: flush a WAL's buffer first, then call the wrapped file.
#define REAL(f) (((CoalescingFile *)(f))->real)
#define FLUSHED(f)                                                     \
    do {                                                               \
        CoalescingFile *file_ = (CoalescingFile *)(f);                 \
        if (file_->isWAL) {                                            \
            int rc_ = flush(file_);                                    \
            if (rc_ != SQLITE_OK) return rc_;                          \
        }                                                              \
    } while (0)

static int xClose(sqlite3_file *f) {
    CoalescingFile *file = (CoalescingFile *)f;
    int flushed = file->isWAL ? flush(file) : SQLITE_OK;
    int rc = file->real->pMethods ? file->real->pMethods->xClose(file->real) : SQLITE_OK;
    sqlite3_free(file->buffer);
    file->buffer = 0;
    file->capacity = 0;
    return flushed != SQLITE_OK ? flushed : rc;
}

static int xRead(sqlite3_file *f, void *data, int amount, sqlite3_int64 offset) {
    FLUSHED(f);
    return REAL(f)->pMethods->xRead(REAL(f), data, amount, offset);
}

static int xWrite(sqlite3_file *f, const void *data, int amount, sqlite3_int64 offset) {
    CoalescingFile *file = (CoalescingFile *)f;
    if (file->isWAL) return walWrite(file, data, amount, offset);
    return file->real->pMethods->xWrite(file->real, data, amount, offset);
}

static int xTruncate(sqlite3_file *f, sqlite3_int64 size) {
    FLUSHED(f);
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int xSync(sqlite3_file *f, int flags) {
    FLUSHED(f);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int xFileSize(sqlite3_file *f, sqlite3_int64 *size) {
    FLUSHED(f);
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int xLock(sqlite3_file *f, int level) {
    FLUSHED(f);
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int xUnlock(sqlite3_file *f, int level) {
    FLUSHED(f);
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int xCheckReservedLock(sqlite3_file *f, int *out) {
    FLUSHED(f);
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int xFileControl(sqlite3_file *f, int op, void *arg) {
    FLUSHED(f);
    int rc = REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
    // Name this VFS in the stack SQLite reports (SQLITE_FCNTL_VFSNAME), as wrapping VFSes do.
    if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) {
        *(char **)arg = sqlite3_mprintf("shmwarden-wal/%z", *(char **)arg);
    }
    return rc;
}

static int xSectorSize(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }

static int xDeviceCharacteristics(sqlite3_file *f) {
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int xShmMap(sqlite3_file *f, int region, int size, int extend, void volatile **out) {
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int xShmLock(sqlite3_file *f, int offset, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void xShmBarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }

static int xShmUnmap(sqlite3_file *f, int deleteFlag) { return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag); }

static int xFetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) {
    FLUSHED(f);
    return REAL(f)->pMethods->xFetch(REAL(f), offset, amount, out);
}

static int xUnfetch(sqlite3_file *f, sqlite3_int64 offset, void *pointer) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), offset, pointer);
}

static const sqlite3_io_methods coalescingMethods = {
    3, xClose, xRead, xWrite, xTruncate, xSync, xFileSize, xLock, xUnlock, xCheckReservedLock, xFileControl,
    xSectorSize, xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap, xFetch, xUnfetch,
};

static int xOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *outFlags) {
    (void)vfs;
    CoalescingFile *file = (CoalescingFile *)f;
    memset(file, 0, sizeof(*file));
    file->real = (sqlite3_file *)(file + 1);
    int rc = wrappedVFS->xOpen(wrappedVFS, name, file->real, flags, outFlags);
    // SQLite calls xClose only when pMethods is set: leave it unset if the open failed.
    if (rc != SQLITE_OK || !file->real->pMethods) return rc;
    if (file->real->pMethods->iVersion < 3) {
        // The methods above forward shared memory and memory maps (version 3): refuse a file
        // that has none rather than call into what is not there.
        file->real->pMethods->xClose(file->real);
        return SQLITE_CANTOPEN;
    }
    file->isWAL = (flags & SQLITE_OPEN_WAL) != 0;
    file->base.pMethods = &coalescingMethods;
    return SQLITE_OK;
}

int warden_sqlite_register_coalescing_wal(void) {
    if (sqlite3_vfs_find("shmwarden-wal")) return 0;
    wrappedVFS = sqlite3_vfs_find(0);
    if (!wrappedVFS) return -1;
    coalescingVFS = *wrappedVFS;
    coalescingVFS.pNext = 0;
    coalescingVFS.zName = "shmwarden-wal";
    coalescingVFS.szOsFile = (int)sizeof(CoalescingFile) + wrappedVFS->szOsFile;
    coalescingVFS.xOpen = xOpen;
    return sqlite3_vfs_register(&coalescingVFS, 1) == SQLITE_OK ? 0 : -1;
}

int warden_sqlite_checkpoint_on_close(struct sqlite3 *connection, int enabled) {
    // sqlite3_db_config is variadic: Swift cannot call it.
    return sqlite3_db_config(connection, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, enabled ? 0 : 1, (int *)0) == SQLITE_OK ? 0 : -1;
}
