/* Thumbnails with libvips (see thumb.h). One thumbnail per call, on a worker
 * thread; callers coalesce concurrent requests for one thumbnail, so the
 * load here is one generation per (image, size) over the image's life. */
#include "blob/thumb.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "core/alloc.h"
#include "core/log.h"

enum { THUMB_SIDE_MAX = 10000, THUMB_HUGE = 10000000 };

static int parse_side(struct slice s, int *out)
{
    if (s.len == 0 || s.len > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    if (v > THUMB_SIDE_MAX)
        return -1;
    *out = v;
    return 0;
}

int thumb_parse(struct slice spec, struct thumb_size *out)
{
    if (!spec.ptr || spec.len < 3)
        return -1;
    enum thumb_mode mode = THUMB_CENTER;
    switch (spec.ptr[spec.len - 1]) {
    case 't':
        mode = THUMB_TOP;
        break;
    case 'b':
        mode = THUMB_BOTTOM;
        break;
    case 'f':
        mode = THUMB_FIT;
        break;
    default:
        break;
    }
    if (mode != THUMB_CENTER)
        spec.len--;
    const char *x = memchr(spec.ptr, 'x', spec.len);
    if (!x)
        return -1;
    struct thumb_size s = {0, 0, mode};
    if (parse_side(slice_make(spec.ptr, (size_t)(x - spec.ptr)), &s.width) ||
        parse_side(slice_make(x + 1, spec.len - (size_t)(x - spec.ptr) - 1), &s.height))
        return -1;
    if (s.width == 0 && s.height == 0)
        return -1;
    if (s.width == 0 || s.height == 0) {
        if (mode != THUMB_CENTER)
            return -1;
        s.mode = THUMB_RATIO;
    }
    *out = s;
    return 0;
}

int thumb_supported(const char *content_type)
{
    static const char *const types[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(content_type, types[i]) == 0)
            return 1;
    return 0;
}

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_ready;

/* libvips tells what it works around (a bad chunk, a truncated file) through
 * GLib's log, which writes to stderr. A note made while this thread makes a
 * thumbnail is kept for the thumbnail's own message, so one image makes one
 * log line; any other goes to our log on its own. The notes live inline so
 * that a thread's copy owns no heap memory. */
static _Thread_local bool thumb_noting;
static _Thread_local char thumb_notes[512];

static void thumb_vips_log(const gchar *domain, GLogLevelFlags level, const gchar *message,
                           gpointer unused)
{
    if (!thumb_noting) {
        log_warn("libvips: %s", message);
        return;
    }
    size_t n = strlen(thumb_notes);
    snprintf(thumb_notes + n, sizeof(thumb_notes) - n, "%s%s", n ? "; " : "", message);
}

/* libvips's error buffer on one line, into out (at least 2 bytes). */
static void thumb_vips_error(char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", vips_error_buffer());
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static void vips_start(void)
{
    if (VIPS_INIT("cruder") != 0) {
        log_error("thumbnails: libvips does not start: %s", vips_error_buffer());
        vips_error_clear();
        return;
    }
    /* Every thumbnail is made once and then read from disk: caching
     * operations would only hold decoded images in memory. */
    vips_cache_set_max(0);
    g_log_set_handler("VIPS", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
                      thumb_vips_log, NULL);
    vips_ready = 1;
}

/* The saver for an image's loader: the source's format, GIF as PNG (a
 * thumbnail is one frame). NULL for formats thumbnails are not made of. */
static const char *saver_suffix(VipsImage *im)
{
    const char *loader = NULL;
    if (vips_image_get_string(im, "vips-loader", &loader) != 0 || !loader) {
        vips_error_clear();
        return NULL;
    }
    if (strncmp(loader, "jpegload", 8) == 0)
        return ".jpg[Q=85,strip]";
    if (strncmp(loader, "pngload", 7) == 0 || strncmp(loader, "gifload", 7) == 0)
        return ".png[strip]";
    if (strncmp(loader, "webpload", 8) == 0)
        return ".webp[Q=85,strip]";
    return NULL;
}

/* The size of the output, to refuse a thumbnail larger than the limit
 * before making it (a tall image at Wx0 can be). */
static uint64_t out_pixels(const struct thumb_size *s, int w, int h)
{
    double sw = s->width, sh = s->height;
    switch (s->mode) {
    case THUMB_RATIO:
        if (s->width == 0)
            sw = (double)w * sh / h;
        else
            sh = (double)h * sw / w;
        break;
    case THUMB_FIT:
        if (w <= s->width && h <= s->height)
            return (uint64_t)w * (uint64_t)h;
        break;
    default:
        break;
    }
    return (uint64_t)(sw + 1) * (uint64_t)(sh + 1);
}

static int scale(VipsSource *src, const struct thumb_size *s, VipsImage **out)
{
    switch (s->mode) {
    case THUMB_CENTER:
    case THUMB_TOP:
    case THUMB_BOTTOM:
        return vips_thumbnail_source(src, out, s->width, "height", s->height, "crop",
                                     s->mode == THUMB_TOP      ? VIPS_INTERESTING_LOW
                                     : s->mode == THUMB_BOTTOM ? VIPS_INTERESTING_HIGH
                                                               : VIPS_INTERESTING_CENTRE,
                                     NULL);
    case THUMB_FIT:
        return vips_thumbnail_source(src, out, s->width, "height", s->height, "size",
                                     VIPS_SIZE_DOWN, NULL);
    case THUMB_RATIO:
        return vips_thumbnail_source(src, out, s->width ? s->width : THUMB_HUGE, "height",
                                     s->height ? s->height : THUMB_HUGE, NULL);
    }
    return -1;
}

static int write_all(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = data;
    int rc = 0;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    /* The rename must not make visible a file whose bytes a crash loses. */
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc)
        unlink(path);
    return rc;
}

int thumb_make(int src_fd, const char *dst, const struct thumb_size *size, uint64_t max_pixels)
{
    pthread_once(&vips_once, vips_start);
    if (!vips_ready)
        return -ENOSYS;
    int rc = -EINVAL;
    VipsSource *src = NULL;
    VipsImage *head = NULL, *out = NULL;
    void *bytes = NULL;
    size_t len = 0;
    char tmp[4200];
    if (lseek(src_fd, 0, SEEK_SET) < 0)
        return -errno;
    thumb_notes[0] = '\0';
    thumb_noting = true;
    src = vips_source_new_from_descriptor(src_fd);
    if (!src)
        goto done;
    /* Opening reads the header only: pixels are decoded on demand. */
    head = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!head)
        goto done;
    int w = vips_image_get_width(head), h = vips_image_get_height(head);
    const char *suffix = saver_suffix(head);
    if (!suffix || w <= 0 || h <= 0)
        goto done;
    if ((uint64_t)w * (uint64_t)h > max_pixels || out_pixels(size, w, h) > max_pixels) {
        rc = -E2BIG;
        goto done;
    }
    if (scale(src, size, &out) != 0 ||
        vips_image_write_to_buffer(out, suffix, &bytes, &len, NULL) != 0)
        goto done;
    int n = snprintf(tmp, sizeof(tmp), "%s.%lx.tmp", dst, (unsigned long)pthread_self());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        goto done;
    }
    rc = write_all(tmp, bytes, len);
    if (rc == 0 && rename(tmp, dst) != 0) {
        rc = -errno;
        unlink(tmp);
    }
done:
    thumb_noting = false;
    if (rc == -EINVAL) {
        char err[512];
        thumb_vips_error(err, sizeof(err));
        log_warn("thumbnail %s: not a readable image (%s%s%s)", dst, err,
                 *err && *thumb_notes ? "; " : "", thumb_notes);
    } else if (rc == 0 && *thumb_notes) {
        log_warn("thumbnail %s: made despite libvips warnings (%s)", dst, thumb_notes);
    }
    vips_error_clear();
    g_free(bytes);
    if (out)
        g_object_unref(out);
    if (head)
        g_object_unref(head);
    if (src)
        g_object_unref(src);
    return rc;
}

/* ---- coalescing ---- */

struct thumb_waiter {
    struct thumb_waiter *next;
    void (*done)(void *ud, int rc);
    void *ud;
};

struct thumb_job {
    struct thumb_job *next;
    const char *dst;
    struct thumb_waiter *waiters;
};

static struct {
    pthread_mutex_t lock;
    struct thumb_job *jobs; /* generations running; a handful at most */
    uint64_t generations;
} gen = {.lock = PTHREAD_MUTEX_INITIALIZER};

int thumb_ensure(int src_fd, const char *dst, const struct thumb_size *size, uint64_t max_pixels,
                 void (*parked_done)(void *ud, int rc), void *ud)
{
    if (access(dst, F_OK) == 0)
        return 0;
    pthread_mutex_lock(&gen.lock);
    /* A generation may have renamed dst into place since the check above. */
    if (access(dst, F_OK) == 0) {
        pthread_mutex_unlock(&gen.lock);
        return 0;
    }
    for (struct thumb_job *j = gen.jobs; j; j = j->next) {
        if (strcmp(j->dst, dst) == 0) {
            struct thumb_waiter *w = xmalloc(sizeof(*w));
            *w = (struct thumb_waiter){j->waiters, parked_done, ud};
            j->waiters = w;
            pthread_mutex_unlock(&gen.lock);
            return 1;
        }
    }
    struct thumb_job job = {gen.jobs, dst, NULL};
    gen.jobs = &job;
    gen.generations++;
    pthread_mutex_unlock(&gen.lock);

    int rc = thumb_make(src_fd, dst, size, max_pixels);

    pthread_mutex_lock(&gen.lock);
    struct thumb_job **p = &gen.jobs;
    while (*p != &job)
        p = &(*p)->next;
    *p = job.next;
    pthread_mutex_unlock(&gen.lock);
    for (struct thumb_waiter *w = job.waiters, *next; w; w = next) {
        next = w->next;
        w->done(w->ud, rc);
        free(w);
    }
    return rc;
}

uint64_t thumb_generations(void)
{
    pthread_mutex_lock(&gen.lock);
    uint64_t n = gen.generations;
    pthread_mutex_unlock(&gen.lock);
    return n;
}
