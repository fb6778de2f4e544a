/* The work pool's two lanes (see workpool.h).
 *
 * The I/O lane is a mutex-guarded FIFO and its threads; jobs are few and
 * long next to a lock round trip (a file write), so one lock is not
 * contended.
 *
 * The batch lane's threads run at SCHED_IDLE, so a loop must never wait for
 * a lock one of them holds: preempted inside it by anything of normal
 * priority, such a thread may not run again for a long time on a busy core,
 * and the loop would stall with it (priority inversion). So nothing the
 * loops touch is locked by a batch thread: loops push jobs onto a lock-free
 * stack and count them on a semaphore (sem_post takes no lock); batch
 * threads take jobs under a mutex of their own; finished jobs go onto
 * another lock-free stack, from which a courier thread of normal priority
 * posts the completions to the loops (http_loop_post locks the loop's
 * queue) and frees the jobs (the loops' malloc arenas). */
#include "core/workpool.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

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
} io = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static struct {
    _Atomic(struct work_job *) inbox; /* pushed by submitters, newest first */
    sem_t items;                      /* one post per job, plus one per thread at stop */
    pthread_mutex_t take;             /* batch threads only */
    struct work_job *ready;           /* under take: the inbox in submission order */
    atomic_size_t queued;
    size_t max_queue;
    atomic_bool stopping;
    pthread_t *threads;
    int nthreads;
    _Atomic(struct work_job *) outbox; /* finished, for the courier */
    sem_t finished;                    /* one post per finished job, plus one at stop */
    atomic_bool courier_stopping;
    pthread_t courier;
} batch = {.take = PTHREAD_MUTEX_INITIALIZER};

/* Pushes job onto a lock-free stack (a Treiber stack: only whole-stack
 * exchanges pop, so there is no ABA). */
static void stack_push(_Atomic(struct work_job *) *top, struct work_job *job)
{
    struct work_job *old = atomic_load(top);
    do
        job->next = old;
    while (!atomic_compare_exchange_weak(top, &old, job));
}

/* Takes the whole stack, oldest first. */
static struct work_job *stack_take_fifo(_Atomic(struct work_job *) *top)
{
    struct work_job *lifo = atomic_exchange(top, NULL), *fifo = NULL;
    while (lifo) {
        struct work_job *next = lifo->next;
        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    return fifo;
}

/* Moves the calling thread, and only it, to SCHED_IDLE: the smallest CFS
 * weight there is (3 against a loop's 1024), and a loop waking up preempts
 * it at once rather than after a wakeup granularity as it would a nice 19
 * SCHED_BATCH thread, which kept less of the loop's speed in bench/run.sh's
 * login section. Needs no privilege. A failure (a sandbox refusing the
 * call) leaves the thread at normal priority: slower loops under hashing,
 * nothing worse. */
static void lower_priority(void)
{
    struct sched_param sp = {.sched_priority = 0};
    int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    if (rc != 0)
        log_warn("work pool: batch thread keeps normal priority: %s", strerror(rc));
}

static void sem_wait_uninterrupted(sem_t *s)
{
    while (sem_wait(s) != 0)
        ;
}

static void *batch_main(void *unused)
{
    (void)unused;
    pthread_setname_np(pthread_self(), "cruder-batch");
    lower_priority();
    for (;;) {
        sem_wait_uninterrupted(&batch.items);
        pthread_mutex_lock(&batch.take);
        if (!batch.ready)
            batch.ready = stack_take_fifo(&batch.inbox);
        struct work_job *job = batch.ready;
        if (job)
            batch.ready = job->next;
        pthread_mutex_unlock(&batch.take);
        /* Every job has its post, so a post without a job is a stop's. */
        if (!job)
            break;
        atomic_fetch_sub(&batch.queued, 1);
        job->work(job->arg);
        stack_push(&batch.outbox, job);
        sem_post(&batch.finished);
    }
    return NULL;
}

static void deliver(struct work_job *job)
{
    while (job) {
        struct work_job *next = job->next;
        job->post(job->target, job->done, job->arg);
        free(job);
        job = next;
    }
}

static void *courier_main(void *unused)
{
    (void)unused;
    pthread_setname_np(pthread_self(), "cruder-courier");
    for (;;) {
        sem_wait_uninterrupted(&batch.finished);
        bool stop = atomic_load(&batch.courier_stopping);
        deliver(stack_take_fifo(&batch.outbox));
        if (stop)
            break;
    }
    return NULL;
}

static void *io_main(void *unused)
{
    (void)unused;
    pthread_setname_np(pthread_self(), "cruder-io");
    pthread_mutex_lock(&io.lock);
    for (;;) {
        while (!io.head && !io.stopping)
            pthread_cond_wait(&io.wake, &io.lock);
        struct work_job *job = io.head;
        if (!job)
            break;
        io.head = job->next;
        if (!io.head)
            io.tail = NULL;
        io.queued--;
        pthread_mutex_unlock(&io.lock);
        job->work(job->arg);
        job->post(job->target, job->done, job->arg);
        free(job);
        pthread_mutex_lock(&io.lock);
    }
    pthread_mutex_unlock(&io.lock);
    return NULL;
}

/* Submitters between their check of `stopping` and their post: the stop
 * waits for them, so that no job is pushed after the threads are gone. */
static atomic_int batch_submitting;

void workpool_start(int nthreads, size_t max_queue)
{
    core_assert(nthreads > 0 && io.nthreads == 0 && batch.nthreads == 0);
    io.max_queue = max_queue;
    io.stopping = false;
    io.threads = xcalloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++)
        core_assert(pthread_create(&io.threads[i], NULL, io_main, NULL) == 0);
    io.nthreads = nthreads;

    core_assert(sem_init(&batch.items, 0, 0) == 0 && sem_init(&batch.finished, 0, 0) == 0);
    batch.max_queue = max_queue;
    atomic_store(&batch.queued, 0);
    atomic_store(&batch.stopping, false);
    atomic_store(&batch.courier_stopping, false);
    core_assert(pthread_create(&batch.courier, NULL, courier_main, NULL) == 0);
    batch.threads = xcalloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++)
        core_assert(pthread_create(&batch.threads[i], NULL, batch_main, NULL) == 0);
    batch.nthreads = nthreads;
}

void workpool_stop(void)
{
    pthread_mutex_lock(&io.lock);
    io.stopping = true;
    pthread_cond_broadcast(&io.wake);
    pthread_mutex_unlock(&io.lock);
    for (int i = 0; i < io.nthreads; i++)
        pthread_join(io.threads[i], NULL);
    free(io.threads);
    io.threads = NULL;
    io.nthreads = 0;

    atomic_store(&batch.stopping, true);
    while (atomic_load(&batch_submitting) > 0)
        sched_yield();
    for (int i = 0; i < batch.nthreads; i++)
        sem_post(&batch.items);
    for (int i = 0; i < batch.nthreads; i++)
        pthread_join(batch.threads[i], NULL);
    atomic_store(&batch.courier_stopping, true);
    sem_post(&batch.finished);
    pthread_join(batch.courier, NULL);
    free(batch.threads);
    batch.threads = NULL;
    batch.nthreads = 0;
    sem_destroy(&batch.items);
    sem_destroy(&batch.finished);
}

static struct work_job *job_new(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                                workpool_post_fn post, void *target)
{
    struct work_job *job = xmalloc(sizeof(*job));
    *job = (struct work_job){NULL, work, done, arg, post, target};
    return job;
}

int workpool_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                    workpool_post_fn post, void *target)
{
    struct work_job *job = job_new(work, done, arg, post, target);
    pthread_mutex_lock(&io.lock);
    if (io.queued >= io.max_queue || io.stopping) {
        pthread_mutex_unlock(&io.lock);
        free(job);
        return -1;
    }
    if (io.tail)
        io.tail->next = job;
    else
        io.head = job;
    io.tail = job;
    io.queued++;
    pthread_cond_signal(&io.wake);
    pthread_mutex_unlock(&io.lock);
    return 0;
}

int workpool_submit_batch(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                          workpool_post_fn post, void *target)
{
    atomic_fetch_add(&batch_submitting, 1);
    if (atomic_load(&batch.stopping)) {
        atomic_fetch_sub(&batch_submitting, 1);
        return -1;
    }
    if (atomic_fetch_add(&batch.queued, 1) >= batch.max_queue) {
        atomic_fetch_sub(&batch.queued, 1);
        atomic_fetch_sub(&batch_submitting, 1);
        return -1;
    }
    stack_push(&batch.inbox, job_new(work, done, arg, post, target));
    sem_post(&batch.items);
    atomic_fetch_sub(&batch_submitting, 1);
    return 0;
}
