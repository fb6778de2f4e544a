/* Thumbnails of stored images with libvips, in PocketBase's size syntax.
 *
 * Generation blocks (decoding, resampling, disk): call thumb_make from a
 * worker thread, never on an event loop. Images are decoded with
 * shrink-on-load where the format allows (JPEG), so a 12-megapixel photo
 * needs a fraction of its decoded size in memory. */
#ifndef BLOB_THUMB_H
#define BLOB_THUMB_H

#include <stdint.h>

#include "core/slice.h"

/* Images with more pixels than this are refused before any pixel is
 * decoded: a small file can claim 65535x65535 (a decompression bomb). */
#define THUMB_MAX_PIXELS (64ull * 1024 * 1024)

enum thumb_mode {
    THUMB_CENTER, /* WxH: fill the box, crop the overflow around the center */
    THUMB_TOP,    /* WxHt: fill, crop keeping the top */
    THUMB_BOTTOM, /* WxHb: fill, crop keeping the bottom */
    THUMB_FIT,    /* WxHf: fit inside the box, never enlarged */
    THUMB_RATIO,  /* 0xH or Wx0: the other side follows the aspect ratio */
};

struct thumb_size {
    int width, height; /* one may be 0 with THUMB_RATIO */
    enum thumb_mode mode;
};

/* Parses "WxH", "WxHt", "WxHb", "WxHf", "0xH", "Wx0" (sides 0..10000, not
 * both 0, no suffix with a 0 side). 0, or -1 for anything else. */
int thumb_parse(struct slice spec, struct thumb_size *out);

/* Whether thumbnails are made for a sniffed content type (PocketBase's
 * list: PNG, JPEG, GIF, WebP). */
int thumb_supported(const char *content_type);

/* Reads the image from src_fd (not closed; its file offset moves), scales
 * it to size and writes it, in the source's format (GIF as PNG), to dst
 * through a temporary file fsynced and renamed into place, so a reader
 * never sees a partial thumbnail. 0; -E2BIG when the image or the thumbnail
 * has more than max_pixels pixels (nothing decoded); -EINVAL when src_fd is
 * not a readable image of a supported format; or -errno. Thread-safe. */
int thumb_make(int src_fd, const char *dst, const struct thumb_size *size, uint64_t max_pixels);

/* Makes dst with thumb_make unless it exists, coalescing concurrent calls
 * for one dst into one generation: the first caller generates while later
 * ones are parked. Returns 0 when dst exists (found or made), 1 when the
 * caller was parked: then parked_done(ud, rc) runs later on the generating
 * thread with what thumb_make returned, and src_fd is not read; or
 * thumb_make's error. */
int thumb_ensure(int src_fd, const char *dst, const struct thumb_size *size, uint64_t max_pixels,
                 void (*parked_done)(void *ud, int rc), void *ud);

/* Thumbnails generated since start (for metrics and tests). */
uint64_t thumb_generations(void);

#endif
