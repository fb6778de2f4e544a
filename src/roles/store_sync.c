/* Blocking calls into the asynchronous store: the result is copied out on the
 * store's thread and the caller waits on a condition variable. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "roles/roles.h"

struct store_sync {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    struct store_result res;
};

struct store_sync *store_sync_new(void)
{
    struct store_sync *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    return s;
}

void store_sync_free(struct store_sync *s)
{
    if (!s)
        return;
    buf_free(&s->res.json);
    json_decref(s->res.errors);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

void store_sync_post(void *target, void (*fn)(void *arg), void *arg)
{
    (void)target;
    fn(arg);
}

void store_sync_cb(void *arg, struct store_result *res)
{
    struct store_sync *s = arg;
    pthread_mutex_lock(&s->lock);
    s->res.status = res->status;
    s->res.version = res->version;
    s->res.total = res->total;
    buf_append_slice(&s->res.json, buf_slice(&res->json));
    s->res.errors = res->errors ? json_incref(res->errors) : NULL;
    memcpy(s->res.message, res->message, sizeof(s->res.message));
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

struct store_result *store_sync_wait(struct store_sync *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->done)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return &s->res;
}
