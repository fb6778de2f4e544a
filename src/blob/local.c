/* The local-disk blob adapter (blob.h). Uploads stream into a temporary file
 * under storage/.tmp, are fsynced and renamed into place, and the directory
 * is fsynced, so a committed blob survives a crash and an interrupted one is
 * only ever a temporary, which the startup sweep deletes. Load: one open,
 * one fsync pair and one rename per uploaded file; reads are one open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "core/alloc.h"
#include "core/id.h"

struct local_store {
    struct blob_store pub;
    char *root; /* <dir>/storage */
};

struct blob_writer {
    struct local_store *ls;
    int fd;
    char tmp[4096];
};

bool blob_plain_name(struct slice s)
{
    if (s.len == 0 || s.len >= BLOB_NAME_MAX || s.ptr[0] == '.')
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void random_alnum(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[32];
    id_random_bytes(r, n);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[r[i] % 36]; /* 256 % 36 = 4: a bias no attacker gains from */
}

void blob_make_name(struct slice original, char *out)
{
    /* Only the last path element counts, whichever separator the client used. */
    for (size_t i = original.len; i > 0; i--)
        if (original.ptr[i - 1] == '/' || original.ptr[i - 1] == '\\') {
            original = slice_make(original.ptr + i, original.len - i);
            break;
        }
    const char *dot = original.len ? memrchr(original.ptr, '.', original.len) : NULL;
    if (dot == original.ptr)
        dot = NULL; /* ".env" is a name, not an extension */
    struct slice base = dot ? slice_make(original.ptr, (size_t)(dot - original.ptr)) : original;
    size_t n = 0;
    bool sep = false;
    for (size_t i = 0; i < base.len && n < 100; i++) {
        char c = base.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (sep && n > 0 && n < 99)
                out[n++] = '_';
            out[n++] = c;
            sep = false;
        } else {
            sep = true;
        }
    }
    if (n == 0) {
        memcpy(out, "file", 4);
        n = 4;
    }
    out[n++] = '_';
    random_alnum(out + n, 10);
    n += 10;
    if (dot) {
        size_t e0 = n;
        out[n++] = '.';
        for (const char *p = dot + 1; p < original.ptr + original.len && n - e0 < 21; p++) {
            char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                out[n++] = c;
        }
        if (n == e0 + 1)
            n = e0;
    }
    out[n] = '\0';
}

static int path_of(const struct local_store *ls, char *out, size_t len, const char *coll,
                   const char *rec, const char *name)
{
    if (!blob_plain_name(slice_cstr(coll)) || !blob_plain_name(slice_cstr(rec)) ||
        (name && !blob_plain_name(slice_cstr(name))))
        return -EINVAL;
    int n = name ? snprintf(out, len, "%s/%s/%s/%s", ls->root, coll, rec, name)
                 : snprintf(out, len, "%s/%s/%s", ls->root, coll, rec);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int l_writer_open(struct blob_store *bs, struct blob_writer **out)
{
    struct local_store *ls = (struct local_store *)bs;
    struct blob_writer *w = xcalloc(1, sizeof(*w));
    w->ls = ls;
    char rnd[17];
    random_alnum(rnd, 16);
    rnd[16] = '\0';
    snprintf(w->tmp, sizeof(w->tmp), "%s/.tmp/%s", ls->root, rnd);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = -errno;
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int l_writer_write(struct blob_writer *w, struct slice data)
{
    while (data.len) {
        ssize_t n = write(w->fd, data.ptr, data.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data.ptr += n;
        data.len -= (size_t)n;
    }
    return 0;
}

static void l_writer_abort(struct blob_writer *w)
{
    if (!w)
        return;
    close(w->fd);
    unlink(w->tmp);
    free(w);
}

static int l_writer_commit(struct blob_writer *w, const char *coll, const char *rec,
                           const char *name)
{
    char dst[4096], dst_dir[4096];
    int rc = path_of(w->ls, dst, sizeof(dst), coll, rec, name);
    if (rc == 0)
        rc = path_of(w->ls, dst_dir, sizeof(dst_dir), coll, rec, NULL);
    if (rc == 0)
        rc = fsync(w->fd) == 0 ? 0 : -errno;
    if (rc == 0)
        rc = mkdir_p(dst_dir);
    /* link() refuses to replace: a stored name is unique, and an existing
     * file under it is somebody else's. */
    if (rc == 0 && link(w->tmp, dst) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(dst_dir);
    if (rc != 0 && rc != -EEXIST && rc != -EINVAL && rc != -ENAMETOOLONG)
        unlink(dst);
    l_writer_abort(w);
    return rc;
}

static int l_open_read(struct blob_store *bs, const char *coll, const char *rec, const char *name,
                       int *fd, struct blob_stat *st)
{
    char path[4096];
    int rc = path_of((struct local_store *)bs, path, sizeof(path), coll, rec, name);
    if (rc)
        return rc;
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0)
        return -errno;
    struct stat s;
    if (fstat(f, &s) != 0 || !S_ISREG(s.st_mode)) {
        close(f);
        return -ENOENT;
    }
    st->size = (uint64_t)s.st_size;
    st->mtime_ms = (int64_t)s.st_mtim.tv_sec * 1000 + s.st_mtim.tv_nsec / 1000000;
    *fd = f;
    return 0;
}

/* Removes path and, if it is a directory, everything below it. */
static int remove_tree(const char *path);

static int l_remove(struct blob_store *bs, const char *coll, const char *rec, const char *name)
{
    char path[4096], thumbs[4096];
    int rc = path_of((struct local_store *)bs, path, sizeof(path), coll, rec, name);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    int n = snprintf(thumbs, sizeof(thumbs), "%s/%s/%s/thumbs_%s", ((struct local_store *)bs)->root,
                     coll, rec, name);
    if (n > 0 && (size_t)n < sizeof(thumbs))
        remove_tree(thumbs);
    /* The record's directory goes with its last file (rmdir refuses otherwise). */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rmdir(path);
    return 0;
}

static int l_remove_record(struct blob_store *bs, const char *coll, const char *rec)
{
    char path[4096];
    int rc = path_of((struct local_store *)bs, path, sizeof(path), coll, rec, NULL);
    return rc ? rc : remove_tree(path);
}

static int l_derived_path(struct blob_store *bs, const char *coll, const char *rec,
                          const char *name, const char *variant, char *out, size_t outlen)
{
    struct local_store *ls = (struct local_store *)bs;
    if (!blob_plain_name(slice_cstr(coll)) || !blob_plain_name(slice_cstr(rec)) ||
        !blob_plain_name(slice_cstr(name)) || !blob_plain_name(slice_cstr(variant)))
        return -EINVAL;
    int n = snprintf(out, outlen, "%s/%s/%s/thumbs_%s", ls->root, coll, rec, name);
    if (n < 0 || (size_t)n >= outlen)
        return -ENAMETOOLONG;
    int rc = mkdir_p(out);
    if (rc)
        return rc;
    n = snprintf(out, outlen, "%s/%s/%s/thumbs_%s/%s", ls->root, coll, rec, name, variant);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Calls fn(ud, path, name) for each entry of dir but "." and "..". */
static int each_entry(const char *dir, int (*fn)(void *ud, const char *path, const char *name),
                      void *ud)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    struct dirent *e;
    char path[4096];
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rc = fn(ud, path, e->d_name);
    }
    closedir(d);
    return rc;
}

static int remove_entry(void *ud, const char *path, const char *name)
{
    return remove_tree(path);
}

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        int rc = each_entry(path, remove_entry, NULL);
        if (rc)
            return rc;
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -errno;
    }
    return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}

struct sweep {
    blob_referenced_fn referenced;
    void *ud;
    size_t removed;
    const char *coll, *rec;
};

static int sweep_tmp(void *ud, const char *path, const char *name)
{
    struct sweep *s = ud;
    if (unlink(path) == 0)
        s->removed++;
    return 0;
}

static int sweep_file(void *ud, const char *path, const char *name)
{
    struct sweep *s = ud;
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        /* Thumbnails live as long as their original. */
        const char *orig = strncmp(name, "thumbs_", 7) == 0 ? name + 7 : NULL;
        if (!orig || !blob_plain_name(slice_cstr(orig)) ||
            !s->referenced(s->ud, s->coll, s->rec, orig)) {
            if (remove_tree(path) == 0)
                s->removed++;
        }
        return 0;
    }
    if (!blob_plain_name(slice_cstr(name)) || !s->referenced(s->ud, s->coll, s->rec, name)) {
        if (unlink(path) == 0)
            s->removed++;
    }
    return 0;
}

static int sweep_record(void *ud, const char *path, const char *name)
{
    struct sweep *s = ud;
    s->rec = name;
    int rc = each_entry(path, sweep_file, s);
    rmdir(path); /* only succeeds when empty */
    return rc;
}

static int sweep_collection(void *ud, const char *path, const char *name)
{
    struct sweep *s = ud;
    if (!strcmp(name, ".tmp"))
        return each_entry(path, sweep_tmp, s);
    s->coll = name;
    int rc = each_entry(path, sweep_record, s);
    rmdir(path);
    return rc;
}

static int l_sweep(struct blob_store *bs, blob_referenced_fn referenced, void *ud, size_t *removed)
{
    struct local_store *ls = (struct local_store *)bs;
    struct sweep s = {referenced, ud, 0, NULL, NULL};
    int rc = each_entry(ls->root, sweep_collection, &s);
    *removed = s.removed;
    return rc;
}

static void l_free(struct blob_store *bs)
{
    struct local_store *ls = (struct local_store *)bs;
    if (!ls)
        return;
    free(ls->root);
    free(ls);
}

static const struct blob_ops local_ops = {
    .writer_open = l_writer_open,
    .writer_write = l_writer_write,
    .writer_commit = l_writer_commit,
    .writer_abort = l_writer_abort,
    .open_read = l_open_read,
    .remove = l_remove,
    .remove_record = l_remove_record,
    .derived_path = l_derived_path,
    .sweep = l_sweep,
    .free = l_free,
};

struct blob_store *blob_local_open(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/storage/.tmp", dir);
    if (n < 0 || (size_t)n >= sizeof(path) - 256) {
        snprintf(err, errlen, "data directory path too long");
        return NULL;
    }
    int rc = mkdir_p(path);
    if (rc) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
        return NULL;
    }
    struct local_store *ls = xcalloc(1, sizeof(*ls));
    ls->pub.ops = &local_ops;
    ls->root = xstrndup(path, (size_t)n - 5);
    return &ls->pub;
}
