/* A small pool of threads for blocking work that must stay off the event loops
 * (password hashing now; image work later). Work runs on a pool thread; its
 * completion runs wherever `post` delivers it (the submitting loop). */
#ifndef CORE_WORKPOOL_H
#define CORE_WORKPOOL_H

#include <stddef.h>

typedef void (*workpool_post_fn)(void *target, void (*fn)(void *arg), void *arg);

/* Starts n threads with a queue bounded to max_queue jobs. Call once. */
void workpool_start(int nthreads, size_t max_queue);
/* Drains queued work and joins the threads. */
void workpool_stop(void);
/* Queues work(arg) then, on the target, done(arg). Returns 0, or -1 at once
 * (nothing queued) when the queue is full; the caller answers 503. */
int workpool_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg,
                    workpool_post_fn post, void *target);

#endif
