/* The local-disk blob adapter (names, commit, abort, reads, removal, the
 * orphan sweep, refused paths) and serving a blob with http_respond_file
 * over a real server: a file larger than the socket buffers (the sendfile
 * loop waits for room), HEAD, and a request pipelined behind a download;
 * thumbnails (sizes, modes, formats, the pixel limit, coalescing) on images
 * libvips makes in the test; record uploads (api/files.c) writing into a
 * recording blob store: file bytes by file, writers opened lazily, and a
 * write failure that frees everything once. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/files.h"
#include "blob/blob.h"
#include "blob/thumb.h"
#include "core/config.h"
#include "http/http.h"

#include <vips/vips.h>
#include <zlib.h>

static char dir[64];
static struct blob_store *bs;

static void setup(void)
{
    strcpy(dir, "/tmp/cruder-blob-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char err[128];
    bs = blob_local_open(dir, err, sizeof(err));
    cr_assert_not_null(bs, "%s", err);
}

static void teardown(void)
{
    bs->ops->free(bs);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static bool exists(const char *rel)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_entries(const char *rel)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls -A %s/%s 2>/dev/null | wc -l", dir, rel);
    FILE *f = popen(cmd, "r");
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static void put(const char *coll, const char *rec, const char *name, const char *data)
{
    struct blob_writer *w;
    cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
    cr_assert_eq(bs->ops->writer_write(w, slice_cstr(data)), 0);
    cr_assert_eq(bs->ops->writer_commit(w, coll, rec, name), 0);
}

Test(blob, make_name_like_pocketbase)
{
    char out[BLOB_NAME_MAX];
    struct {
        const char *in, *prefix, *ext;
    } cases[] = {
        {"My Photo (1).JPG", "my_photo_1_", ".jpg"},
        {"../../etc/passwd", "passwd_", ""},
        {"a\\b\\c.tar.gz", "c_tar_", ".gz"},
        {".env", "env_", ""},
        {"", "file_", ""},
        {"???.p n?g", "file_", ".png"},
        {"x.%2e%2e", "x_", ".2e2e"},
        {"résumé.pdf", "r_sum_", ".pdf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blob_make_name(slice_cstr(cases[i].in), out);
        size_t pl = strlen(cases[i].prefix), el = strlen(cases[i].ext);
        cr_assert_eq(strlen(out), pl + 10 + el, "%s -> %s", cases[i].in, out);
        cr_assert(strncmp(out, cases[i].prefix, pl) == 0, "%s -> %s", cases[i].in, out);
        cr_assert_str_eq(out + pl + 10, cases[i].ext, "%s -> %s", cases[i].in, out);
        for (size_t j = pl; j < pl + 10; j++)
            cr_assert(strchr("abcdefghijklmnopqrstuvwxyz0123456789", out[j]), "%s", out);
        cr_assert(blob_plain_name(slice_cstr(out)), "%s", out);
    }
    char a[BLOB_NAME_MAX], b[BLOB_NAME_MAX];
    blob_make_name(SLICE_LIT("same.txt"), a);
    blob_make_name(SLICE_LIT("same.txt"), b);
    cr_assert_str_neq(a, b);
    char longname[400];
    memset(longname, 'a', 300);
    strcpy(longname + 300, ".abcdefghijklmnopqrstuvwxyz");
    blob_make_name(slice_cstr(longname), out);
    cr_assert_eq(strlen(out), 100 + 1 + 10 + 21, "%s", out);
    cr_assert(blob_plain_name(slice_cstr(out)));
}

Test(blob, plain_names)
{
    cr_assert(blob_plain_name(SLICE_LIT("abc_1234567890.png")));
    const char *bad[] = {"", ".", "..", ".hidden", "a/b", "a\\b", "a b", "%2e%2e", "/abs"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!blob_plain_name(slice_cstr(bad[i])), "%s", bad[i]);
    cr_assert(!blob_plain_name(SLICE_LIT("a\0b")));
}

Test(blob, write_commit_read_remove, .init = setup, .fini = teardown)
{
    put("pbc_1", "rec1", "a_0123456789.txt", "hello blob");
    cr_assert(exists("storage/pbc_1/rec1/a_0123456789.txt"));
    cr_assert_eq(count_entries("storage/.tmp"), 0);
    int fd;
    struct blob_stat st;
    cr_assert_eq(bs->ops->open_read(bs, "pbc_1", "rec1", "a_0123456789.txt", &fd, &st), 0);
    cr_assert_eq(st.size, 10);
    cr_assert_gt(st.mtime_ms, 0);
    char buf[32] = {0};
    cr_assert_eq(read(fd, buf, sizeof(buf)), 10);
    cr_assert_str_eq(buf, "hello blob");
    close(fd);
    /* A stored name is never replaced. */
    struct blob_writer *w;
    cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
    cr_assert_eq(bs->ops->writer_write(w, SLICE_LIT("other")), 0);
    cr_assert_eq(bs->ops->writer_commit(w, "pbc_1", "rec1", "a_0123456789.txt"), -EEXIST);
    cr_assert_eq(count_entries("storage/.tmp"), 0);
    cr_assert_eq(bs->ops->remove(bs, "pbc_1", "rec1", "a_0123456789.txt"), 0);
    cr_assert(!exists("storage/pbc_1/rec1/a_0123456789.txt"));
    cr_assert_eq(bs->ops->remove(bs, "pbc_1", "rec1", "a_0123456789.txt"), 0);
    cr_assert_eq(bs->ops->open_read(bs, "pbc_1", "rec1", "a_0123456789.txt", &fd, &st), -ENOENT);
}

Test(blob, abort_leaves_nothing, .init = setup, .fini = teardown)
{
    struct blob_writer *w;
    cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
    cr_assert_eq(bs->ops->writer_write(w, SLICE_LIT("partial")), 0);
    cr_assert_eq(count_entries("storage/.tmp"), 1);
    bs->ops->writer_abort(w);
    bs->ops->writer_abort(NULL);
    cr_assert_eq(count_entries("storage/.tmp"), 0);
    cr_assert(!exists("storage/c"));
}

Test(blob, traversal_refused, .init = setup, .fini = teardown)
{
    const char *bad[][3] = {
        {"..", "r", "x"},          {"c", "..", "x"},   {"c", "r", ".."},  {"c", "r", "../x"},
        {"c", "r", "/etc/passwd"}, {"c", "r", "a\\b"}, {"c/d", "r", "x"}, {"c", "r", ""},
        {"c", "r", ".tmp"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct blob_writer *w;
        int fd;
        struct blob_stat st;
        char path[256];
        cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
        cr_assert_eq(bs->ops->writer_commit(w, bad[i][0], bad[i][1], bad[i][2]), -EINVAL, "%zu", i);
        cr_assert_eq(
            bs->ops->derived_path(bs, bad[i][0], bad[i][1], bad[i][2], "1x1", path, sizeof(path)),
            -EINVAL);
        cr_assert_eq(bs->ops->open_read(bs, bad[i][0], bad[i][1], bad[i][2], &fd, &st), -EINVAL);
        cr_assert_eq(bs->ops->remove(bs, bad[i][0], bad[i][1], bad[i][2]), -EINVAL);
    }
}

static bool keep_only_k(void *ud, const char *coll, const char *rec, const char *name)
{
    int *calls = ud;
    (*calls)++;
    return name[0] == 'k';
}

Test(blob, orphan_sweep, .init = setup, .fini = teardown)
{
    put("c1", "r1", "keep.txt", "1");
    put("c1", "r1", "drop.txt", "2");
    put("c1", "r2", "drop2.txt", "3");
    put("c2", "r3", "kept.bin", "4");
    struct blob_writer *w;
    cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
    cr_assert_eq(bs->ops->writer_write(w, SLICE_LIT("half")), 0);
    int calls = 0;
    size_t removed = 0;
    cr_assert_eq(bs->ops->sweep(bs, keep_only_k, &calls, &removed), 0);
    cr_assert_eq(calls, 4);
    cr_assert_eq(removed, 3); /* two orphans, one temporary */
    cr_assert(exists("storage/c1/r1/keep.txt"));
    cr_assert(exists("storage/c2/r3/kept.bin"));
    cr_assert(!exists("storage/c1/r1/drop.txt"));
    cr_assert(!exists("storage/c1/r2"), "emptied directories go too");
    cr_assert_eq(count_entries("storage/.tmp"), 0);
    bs->ops->writer_abort(w);
}

static void touch_derived(const char *coll, const char *rec, const char *name, const char *variant)
{
    char path[512];
    cr_assert_eq(bs->ops->derived_path(bs, coll, rec, name, variant, path, sizeof(path)), 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fclose(f);
}

Test(blob, derived_files_go_with_their_blob, .init = setup, .fini = teardown)
{
    put("c", "r", "a.jpg", "A");
    put("c", "r", "k.jpg", "K");
    touch_derived("c", "r", "a.jpg", "10x10_a.jpg");
    touch_derived("c", "r", "k.jpg", "10x10_k.jpg");
    cr_assert(exists("storage/c/r/thumbs_a.jpg/10x10_a.jpg"));
    int calls = 0;
    size_t removed = 0;
    cr_assert_eq(bs->ops->sweep(bs, keep_only_k, &calls, &removed), 0);
    cr_assert_eq(removed, 2); /* a.jpg and its thumbnails */
    cr_assert(!exists("storage/c/r/a.jpg"));
    cr_assert(!exists("storage/c/r/thumbs_a.jpg"));
    cr_assert(exists("storage/c/r/thumbs_k.jpg/10x10_k.jpg"));
    cr_assert_eq(bs->ops->remove(bs, "c", "r", "k.jpg"), 0);
    cr_assert(!exists("storage/c/r/k.jpg"));
    cr_assert(!exists("storage/c/r/thumbs_k.jpg"));
    put("c", "r", "k2.jpg", "K");
    touch_derived("c", "r", "k2.jpg", "1x1_k2.jpg");
    cr_assert_eq(bs->ops->remove_record(bs, "c", "r"), 0);
    cr_assert(!exists("storage/c/r"));
    cr_assert_eq(bs->ops->remove_record(bs, "c", "r"), 0);
}

/* ---- serving a blob with http_respond_file ---- */

enum { BIG = 24 << 20 };

static void serve_blob(struct http_request *req)
{
    int fd;
    struct blob_stat st;
    if (bs->ops->open_read(bs, "c", "r", req->params[0].ptr, &fd, &st) != 0) {
        http_respond(req, 404, SLICE_NULL, SLICE_NULL);
        return;
    }
    uint64_t off = 0, len = st.size;
    struct slice range;
    if (http_request_query(req, "skip", &range)) {
        off = (uint64_t)slice_to_uint(range);
        len -= off;
    }
    http_respond_file(req, 200, SLICE_LIT("application/octet-stream"), fd, off, len);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static char *read_all(int fd, size_t *n)
{
    size_t cap = BIG + (1 << 20);
    char *buf = malloc(cap);
    *n = 0;
    ssize_t r;
    while (*n < cap - 1 && (r = read(fd, buf + *n, cap - 1 - *n)) > 0) {
        *n += (size_t)r;
        if (*n < 4 * 1024 * 1024)
            usleep(200); /* a slow reader at first: the server must wait for room */
    }
    buf[*n] = '\0';
    return buf;
}

Test(blob, served_with_sendfile, .init = setup, .fini = teardown)
{
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + i * 7 % 26);
    struct blob_writer *w;
    cr_assert_eq(bs->ops->writer_open(bs, &w), 0);
    cr_assert_eq(bs->ops->writer_write(w, slice_make(big, BIG)), 0);
    cr_assert_eq(bs->ops->writer_commit(w, "c", "r", "big.bin"), 0);
    put("c", "r", "small.txt", "0123456789");

    struct config cfg;
    config_defaults(&cfg);
    free(cfg.http);
    cfg.http = strdup("127.0.0.1:0");
    cfg.loops = 1;
    cfg.access_log = false;
    cfg.shutdown_timeout_ms = 1000;
    struct http_router *r = http_router_new();
    http_router_add(r, HTTP_M_GET, "/f/:name", serve_blob, 0, "blob");
    struct http_server *srv;
    char err[128];
    cr_assert_eq(http_server_start(&cfg, r, &srv, err, sizeof(err)), 0, "%s", err);
    int port = http_server_port(srv);

    int fd = dial(port);
    const char req[] = "GET /f/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                       "HEAD /f/small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /f/small.txt?skip=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    size_t n;
    char *buf = read_all(fd, &n);
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(body);
    cr_assert_not_null(memmem(buf, (size_t)(body - buf), "Content-Length: 25165824\r\n", 26));
    body += 4;
    cr_assert(memcmp(body, big, BIG) == 0, "the big body, byte for byte");
    char *rest = body + BIG;
    cr_assert(strncmp(rest, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.200s", rest);
    char *head_end = strstr(rest, "\r\n\r\n");
    cr_assert_not_null(strstr(rest, "Content-Length: 10\r\n"));
    rest = head_end + 4; /* HEAD: no body */
    cr_assert(strncmp(rest, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.200s", rest);
    cr_assert_not_null(strstr(rest, "Content-Length: 6\r\n"));
    cr_assert_str_eq(strstr(rest, "\r\n\r\n") + 4, "456789");
    cr_assert_eq(n, (size_t)(strstr(rest, "\r\n\r\n") + 4 + 6 - buf));
    free(buf);
    free(big);

    kill(getpid(), SIGTERM);
    http_server_wait(srv);
    http_server_free(srv);
    http_router_free(r);
    config_free(&cfg);
}

/* ---- thumbnails ---- */

Test(thumb, parse_sizes_like_pocketbase)
{
    struct thumb_size t;
    cr_assert_eq(thumb_parse(SLICE_LIT("100x50"), &t), 0);
    cr_assert(t.width == 100 && t.height == 50 && t.mode == THUMB_CENTER);
    cr_assert_eq(thumb_parse(SLICE_LIT("100x50t"), &t), 0);
    cr_assert_eq(t.mode, THUMB_TOP);
    cr_assert_eq(thumb_parse(SLICE_LIT("100x50b"), &t), 0);
    cr_assert_eq(t.mode, THUMB_BOTTOM);
    cr_assert_eq(thumb_parse(SLICE_LIT("100x50f"), &t), 0);
    cr_assert_eq(t.mode, THUMB_FIT);
    cr_assert_eq(thumb_parse(SLICE_LIT("0x50"), &t), 0);
    cr_assert(t.width == 0 && t.height == 50 && t.mode == THUMB_RATIO);
    cr_assert_eq(thumb_parse(SLICE_LIT("70x0"), &t), 0);
    cr_assert(t.width == 70 && t.height == 0 && t.mode == THUMB_RATIO);
    static const char *const bad[] = {
        "",      "x",     "0x0",   "100",    "100x",  "x100",    "10x10z",     "0x10t",
        "10x0f", "-1x10", "10x-1", "10 x10", "1x1x1", "99999x1", "10000001x1", "10x10tt"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(thumb_parse(slice_cstr(bad[i]), &t), -1, "%s", bad[i]);
}

/* A w x h test image in the format the suffix names: a horizontal gradient
 * (so crops differ), written by libvips. */
static void make_image(const char *path, int w, int h)
{
    VipsImage *x = NULL, *img = NULL;
    cr_assert_eq(vips_xyz(&x, w, h, NULL), 0);
    cr_assert_eq(vips_extract_band(x, &img, 0, NULL), 0);
    VipsImage *u8 = NULL;
    cr_assert_eq(vips_cast(img, &u8, VIPS_FORMAT_UCHAR, NULL), 0);
    cr_assert_eq(vips_image_write_to_file(u8, path, NULL), 0, "%s", vips_error_buffer());
    g_object_unref(u8);
    g_object_unref(img);
    g_object_unref(x);
}

static void image_size(const char *path, int *w, int *h, const char **loader)
{
    VipsImage *im = vips_image_new_from_file(path, NULL);
    cr_assert_not_null(im, "%s: %s", path, vips_error_buffer());
    *w = vips_image_get_width(im);
    *h = vips_image_get_height(im);
    static char name[32];
    const char *l = "";
    vips_image_get_string(im, "vips-loader", &l);
    snprintf(name, sizeof(name), "%s", l);
    *loader = name;
    g_object_unref(im);
}

static int thumb_of(const char *src, const char *dst, const char *spec)
{
    struct thumb_size t;
    cr_assert_eq(thumb_parse(slice_cstr(spec), &t), 0, "%s", spec);
    int fd = open(src, O_RDONLY);
    cr_assert_geq(fd, 0);
    int rc = thumb_make(fd, dst, &t, THUMB_MAX_PIXELS);
    close(fd);
    return rc;
}

static void thumb_init(void)
{
    setup();
    cr_assert_eq(VIPS_INIT("test_blob"), 0);
}

Test(thumb, sizes_and_modes, .init = thumb_init, .fini = teardown)
{
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/photo.jpg", dir);
    make_image(src, 400, 200);
    static const struct {
        const char *spec;
        int w, h;
    } cases[] = {
        {"100x100", 100, 100}, {"100x100t", 100, 100}, {"100x100b", 100, 100},
        {"100x100f", 100, 50}, {"0x50", 100, 50},      {"80x0", 80, 40},
        {"800x0", 800, 400},   {"800x800f", 400, 200}, {"50x20", 50, 20},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(dst, sizeof(dst), "%s/t%zu.jpg", dir, i);
        cr_assert_eq(thumb_of(src, dst, cases[i].spec), 0, "%s", cases[i].spec);
        int w, h;
        const char *loader;
        image_size(dst, &w, &h, &loader);
        cr_expect(w == cases[i].w && h == cases[i].h, "%s: %dx%d", cases[i].spec, w, h);
        cr_expect_str_eq(loader, "jpegload", "%s", cases[i].spec);
    }
}

/* The top crop of a left-to-right gradient turned on its side keeps the
 * dark rows, the bottom crop the bright ones. */
Test(thumb, top_and_bottom_crop_differ, .init = thumb_init, .fini = teardown)
{
    char src[128], top[128], bottom[128];
    snprintf(src, sizeof(src), "%s/tall.png", dir);
    VipsImage *x = NULL, *y = NULL, *u8 = NULL;
    cr_assert_eq(vips_xyz(&x, 50, 200, NULL), 0);
    cr_assert_eq(vips_extract_band(x, &y, 1, NULL), 0);
    cr_assert_eq(vips_cast(y, &u8, VIPS_FORMAT_UCHAR, NULL), 0);
    cr_assert_eq(vips_image_write_to_file(u8, src, NULL), 0);
    g_object_unref(u8);
    g_object_unref(y);
    g_object_unref(x);
    snprintf(top, sizeof(top), "%s/top.png", dir);
    snprintf(bottom, sizeof(bottom), "%s/bottom.png", dir);
    cr_assert_eq(thumb_of(src, top, "50x50t"), 0);
    cr_assert_eq(thumb_of(src, bottom, "50x50b"), 0);
    double mt, mb;
    VipsImage *a = vips_image_new_from_file(top, NULL), *b = vips_image_new_from_file(bottom, NULL);
    cr_assert(a && b);
    cr_assert_eq(vips_avg(a, &mt, NULL), 0);
    cr_assert_eq(vips_avg(b, &mb, NULL), 0);
    cr_expect_lt(mt, 30.0);
    cr_expect_gt(mb, 140.0);
    g_object_unref(a);
    g_object_unref(b);
}

Test(thumb, png_stays_png_and_garbage_is_refused, .init = thumb_init, .fini = teardown)
{
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/a.png", dir);
    snprintf(dst, sizeof(dst), "%s/a_thumb.png", dir);
    make_image(src, 30, 30);
    cr_assert_eq(thumb_of(src, dst, "10x10"), 0);
    int w, h;
    const char *loader;
    image_size(dst, &w, &h, &loader);
    cr_expect_str_eq(loader, "pngload");
    cr_expect(w == 10 && h == 10);

    snprintf(src, sizeof(src), "%s/junk.png", dir);
    FILE *f = fopen(src, "w");
    fputs("\x89PNG\r\n\x1a\nnot really", f);
    fclose(f);
    snprintf(dst, sizeof(dst), "%s/junk_thumb.png", dir);
    cr_assert_eq(thumb_of(src, dst, "10x10"), -EINVAL);
    cr_assert_neq(access(dst, F_OK), 0);
}

/* Appends a PNG chunk (length, type, data, CRC). */
static size_t png_chunk(unsigned char *out, const char *type, const unsigned char *data,
                        uint32_t len)
{
    out[0] = (unsigned char)(len >> 24);
    out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    memcpy(out + 4, type, 4);
    if (len)
        memcpy(out + 8, data, len);
    uLong crc = crc32(0, out + 4, 4 + len);
    out[8 + len] = (unsigned char)(crc >> 24);
    out[9 + len] = (unsigned char)(crc >> 16);
    out[10 + len] = (unsigned char)(crc >> 8);
    out[11 + len] = (unsigned char)crc;
    return 12 + len;
}

/* A valid PNG that claims 60000x60000 pixels over a few hundred bytes of
 * compressed zeros: refused from the header, before anything is decoded. */
Test(thumb, decompression_bomb_refused, .init = thumb_init, .fini = teardown)
{
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/bomb.png", dir);
    snprintf(dst, sizeof(dst), "%s/bomb_thumb.png", dir);
    static unsigned char zeros[1 << 16], file[1 << 14], z[1 << 13];
    const unsigned char ihdr[13] = {0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60, 8, 0, 0, 0, 0};
    uLongf zlen = sizeof(z);
    cr_assert_eq(compress(z, &zlen, zeros, sizeof(zeros)), Z_OK);
    size_t n = 8;
    memcpy(file, "\x89PNG\r\n\x1a\n", 8);
    n += png_chunk(file + n, "IHDR", ihdr, 13);
    n += png_chunk(file + n, "IDAT", z, (uint32_t)zlen);
    n += png_chunk(file + n, "IEND", NULL, 0);
    FILE *f = fopen(src, "w");
    fwrite(file, 1, n, f);
    fclose(f);
    cr_assert_eq(thumb_of(src, dst, "100x100"), -E2BIG);
    cr_assert_neq(access(dst, F_OK), 0);
    /* a thumbnail size can be a bomb too: 10000x0 of a 10x100000 strip */
    snprintf(src, sizeof(src), "%s/strip.png", dir);
    make_image(src, 2, 20000);
    cr_assert_eq(thumb_of(src, dst, "10000x0"), -E2BIG);
}

struct racer {
    const char *src, *dst;
    int rc;
    pthread_mutex_t *lock;
    pthread_cond_t *cond;
    int *parked_left;
};

static void racer_parked_done(void *ud, int rc)
{
    struct racer *r = ud;
    pthread_mutex_lock(r->lock);
    r->rc = rc;
    (*r->parked_left)--;
    pthread_cond_broadcast(r->cond);
    pthread_mutex_unlock(r->lock);
}

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct thumb_size t = {300, 300, THUMB_CENTER};
    int fd = open(r->src, O_RDONLY);
    int rc = thumb_ensure(fd, r->dst, &t, THUMB_MAX_PIXELS, racer_parked_done, r);
    close(fd);
    pthread_mutex_lock(r->lock);
    if (rc == 1)
        (*r->parked_left)++;
    else
        r->rc = rc;
    pthread_mutex_unlock(r->lock);
    return NULL;
}

Test(thumb, concurrent_requests_coalesce, .init = thumb_init, .fini = teardown)
{
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/big.jpg", dir);
    snprintf(dst, sizeof(dst), "%s/big_thumb.jpg", dir);
    make_image(src, 3000, 2000);
    uint64_t before = thumb_generations();
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int parked_left = 0;
    enum { N = 8 };
    struct racer r[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){src, dst, 99, &lock, &cond, &parked_left};
        cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_lock(&lock);
    while (parked_left > 0)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < N; i++)
        cr_expect_eq(r[i].rc, 0, "racer %d: %d", i, r[i].rc);
    cr_expect_eq(thumb_generations() - before, 1);
    /* made once: a later call finds it */
    struct thumb_size t = {300, 300, THUMB_CENTER};
    cr_assert_eq(thumb_ensure(-1, dst, &t, THUMB_MAX_PIXELS, racer_parked_done, NULL), 0);
    cr_expect_eq(thumb_generations() - before, 1);
}

/* Runs thumb_of with stderr going to a file; what was written, in out. */
static int thumb_of_quiet(const char *src, const char *dst, const char *spec, char *out,
                          size_t outlen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = thumb_of(src, dst, spec);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

Test(thumb, libvips_warnings_go_to_our_log_in_one_line, .init = thumb_init, .fini = teardown)
{
    char src[128], dst[128], out[4096];
    snprintf(src, sizeof(src), "%s/junk.png", dir);
    FILE *f = fopen(src, "w");
    fputs("\x89PNG\r\n\x1a\nnot really", f);
    fclose(f);
    snprintf(dst, sizeof(dst), "%s/junk_thumb.png", dir);
    cr_assert_eq(thumb_of_quiet(src, dst, "10x10", out, sizeof(out)), -EINVAL);
    cr_expect_null(strstr(out, "VIPS-WARNING"), "%s", out);
    const char *line = strstr(out, " warn ");
    cr_assert_not_null(line, "%s", out);
    cr_expect_not_null(strstr(line, "not a readable image"), "%s", out);
    /* libvips's own words are in it, and nothing else was written */
    cr_expect_not_null(strstr(line, "chunk data is too large"), "%s", out);
    cr_expect_eq(strchr(out, '\n'), out + strlen(out) - 1, "%s", out);
}

/* ---- uploads into a recording blob store ---- */

struct blob_writer {
    int id;
};

static struct {
    int opens, aborts;
    int fail_write; /* -errno for every write, or 0 */
    struct buf bytes[4];
    struct blob_writer writers[4];
} rec;

static int rec_open(struct blob_store *s, struct blob_writer **out)
{
    cr_assert_lt(rec.opens, 4);
    rec.writers[rec.opens].id = rec.opens;
    *out = &rec.writers[rec.opens++];
    return 0;
}

static int rec_write(struct blob_writer *w, struct slice data)
{
    if (rec.fail_write)
        return rec.fail_write;
    buf_append_slice(&rec.bytes[w->id], data);
    return 0;
}

static void rec_abort(struct blob_writer *w)
{
    if (w)
        rec.aborts++;
}

static const struct blob_ops rec_ops = {
    .writer_open = rec_open,
    .writer_write = rec_write,
    .writer_abort = rec_abort,
};
static struct blob_store rec_store = {&rec_ops};

static struct collection *upload_collection(void)
{
    json_t *errors = NULL;
    json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s, s:i, s:i}]}", "name", "docs",
                             "type", "base", "fields", "name", "title", "type", "text", "name", "f",
                             "type", "file", "maxSelect", 2, "maxSize", 1000);
    struct collection *c = collection_from_json(body, NULL, &errors);
    json_decref(body);
    cr_assert_not_null(c);
    files_set_store(&rec_store);
    return c;
}

static void upload_teardown(void)
{
    for (int i = 0; i < 4; i++)
        buf_free(&rec.bytes[i]);
    memset(&rec, 0, sizeof(rec));
    files_set_store(NULL);
}

static const char upload_body[] =
    "--B\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
    "hi\r\n--B\r\n"
    "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n"
    "hello, world\r\n--B\r\n"
    "Content-Disposition: form-data; name=\"f\"; filename=\"b.txt\"\r\n\r\n"
    "\r\n--B--\r\n";

/* Feeds upload_body in pieces of `step` bytes; the rc of the first failing feed. */
static int feed_body(struct files_upload *u, size_t step)
{
    size_t n = sizeof(upload_body) - 1;
    for (size_t i = 0; i < n; i += step) {
        size_t len = n - i < step ? n - i : step;
        if (files_upload_feed(u, slice_make(upload_body + i, len)))
            return -1;
    }
    return files_upload_finish(u);
}

Test(upload, bytes_go_to_their_file_and_empty_files_open_no_writer, .fini = upload_teardown)
{
    struct collection *c = upload_collection();
    static const size_t steps[] = {1, 7, 64, 4096};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        upload_teardown();
        files_set_store(&rec_store);
        struct files_upload *u =
            files_upload_new(c, SLICE_LIT("multipart/form-data; boundary=B"), 1000);
        cr_assert_eq(feed_body(u, steps[k]), 0, "step %zu", steps[k]);
        /* the empty file has no bytes to open a writer with: that waits for commit */
        cr_expect_eq(rec.opens, 1, "step %zu", steps[k]);
        cr_expect_str_eq(rec.bytes[0].ptr, "hello, world");
        json_t *in = files_upload_input(u);
        cr_expect_str_eq(json_string_value(json_object_get(in, "title")), "hi");
        cr_expect_eq(json_array_size(json_object_get(in, "f")), 2);
        cr_expect_eq(json_array_size(files_upload_names(u)), 2);
        json_decref(in);
        files_upload_free(u);
        cr_expect_eq(rec.aborts, 1, "step %zu", steps[k]);
    }
    collection_release(c);
}

Test(upload, a_failed_write_fails_the_upload_and_frees_its_writer_once, .fini = upload_teardown)
{
    struct collection *c = upload_collection();
    rec.fail_write = -ENOSPC;
    struct files_upload *u =
        files_upload_new(c, SLICE_LIT("multipart/form-data; boundary=B"), 1000);
    cr_assert_eq(feed_body(u, 16), -1);
    int status;
    const char *message;
    json_t *data;
    files_upload_error(u, &status, &message, &data);
    cr_expect_eq(status, 500);
    cr_expect_null(data);
    cr_expect_eq(rec.opens, 1);
    /* a failed upload takes no more input */
    cr_expect_eq(files_upload_feed(u, SLICE_LIT("more")), -1);
    files_upload_free(u);
    cr_expect_eq(rec.aborts, 1);
    collection_release(c);
}
