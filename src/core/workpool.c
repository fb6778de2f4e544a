#include "core/workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/alloc.h"

struct work_job {
    struct work_job *next;
    void (*work)(void *arg);
    void (*done)(void *arg);
    void *arg;
    workpool_post_fn post;
    void *target;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct work_job *head, *tail;
    size_t queued, max_queue;
    bool stopping;
    pthread_t *threads;
    int nthreads;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stopping)
            pthread_cond_wait(&pool.wake, &pool.lock);
        struct work_job *job = pool.head;
        if (!job)
            break;
        pool.head = job->next;
        if (!pool.head)
            pool.tail = NULL;
        pool.queued--;
        pthread_mutex_unlock(&pool.lock);
        job->work(job->arg);
        job->post(job->target, job->done, job->arg);
        free(job);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

void workpool_start(int nthreads, size_t max_queue)
{
    core_assert(pool.nthreads == 0 && nthreads > 0);
    pool.max_queue = max_queue;
    pool.stopping = false;
    pool.threads = xcalloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++)
        core_assert(pthread_create(&pool.threads[i], NULL, worker_main, NULL) == 0);
    pool.nthreads = nthreads;
}

void workpool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;
}

int workpool_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                    workpool_post_fn post, void *target)
{
    struct work_job *job = xmalloc(sizeof(*job));
    *job = (struct work_job){NULL, work, done, arg, post, target};
    pthread_mutex_lock(&pool.lock);
    if (pool.queued >= pool.max_queue || pool.stopping) {
        pthread_mutex_unlock(&pool.lock);
        free(job);
        return -1;
    }
    if (pool.tail)
        pool.tail->next = job;
    else
        pool.head = job;
    pool.tail = job;
    pool.queued++;
    pthread_cond_signal(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    return 0;
}
