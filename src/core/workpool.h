/* A small pool of threads for blocking work that must stay off the event loops
 * (file I/O, password hashing, image work). Work runs on a pool thread; its
 * completion runs wherever `post` delivers it (the submitting loop).
 *
 * Two lanes, each with its own threads and bounded queue: the I/O lane for
 * short blocking calls whose latency a request waits on, and the batch lane
 * for CPU-bound work (Argon2id). Batch threads run at the lowest priority the
 * scheduler has (SCHED_IDLE), so that an event loop sharing their core
 * preempts them: while the loops are busy, hashing gets what is left, and
 * the loops keep serving. The price is paid by batch work alone: on a core
 * that stays saturated it waits (a login takes longer; logins are throttled
 * and bounded by the lane's queue anyway). A loop never waits on a lock a
 * batch thread holds (see workpool.c): batch completions are posted by a
 * courier thread of normal priority. */
#ifndef CORE_WORKPOOL_H
#define CORE_WORKPOOL_H

#include <stddef.h>

typedef void (*workpool_post_fn)(void *target, void (*fn)(void *arg), void *arg);

/* Starts nthreads threads in each lane, each lane's queue bounded to
 * max_queue jobs. Call once. */
void workpool_start(int nthreads, size_t max_queue);
/* Drains queued work of both lanes and joins the threads. */
void workpool_stop(void);
/* Queues work(arg) on the I/O lane then, on the target, done(arg). Returns 0,
 * or -1 at once (nothing queued) when the queue is full; the caller answers
 * 503. */
int workpool_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                    workpool_post_fn post, void *target);
/* The same on the batch lane: CPU-bound work that must never take the CPU
 * from an event loop. */
int workpool_submit_batch(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                          workpool_post_fn post, void *target);

#endif
