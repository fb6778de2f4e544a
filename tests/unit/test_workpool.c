/* The work pool's lanes: each runs its jobs and delivers their completions,
 * batch jobs run at SCHED_IDLE and I/O jobs at the normal policy, batch
 * completions are posted from a thread of normal priority, a stop drains
 * what was queued, and a full queue refuses at once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "core/workpool.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_count;

struct probe {
    int policy;
    bool ran;
};

static void probe_work(void *arg)
{
    struct probe *p = arg;
    struct sched_param sp;
    pthread_getschedparam(pthread_self(), &p->policy, &sp);
    p->ran = true;
}

static void count_done(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done_count++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Runs the completion where the job ran: the test has no loop. */
static void post_inline(void *target, void (*fn)(void *arg), void *arg)
{
    (void)target;
    fn(arg);
}

static void wait_done(int n)
{
    pthread_mutex_lock(&mu);
    while (done_count < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

Test(workpool, lanes_run_their_jobs_at_their_priority)
{
    done_count = 0;
    workpool_start(2, 16);
    struct probe io = {-1, false}, batch = {-1, false};
    cr_assert_eq(workpool_submit(probe_work, count_done, &io, post_inline, NULL), 0);
    cr_assert_eq(workpool_submit_batch(probe_work, count_done, &batch, post_inline, NULL), 0);
    wait_done(2);
    workpool_stop();
    cr_assert(io.ran && batch.ran);
    cr_assert_eq(io.policy, SCHED_OTHER);
    cr_assert_eq(batch.policy, SCHED_IDLE);
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void blocked_work(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate);
    pthread_mutex_unlock(&gate);
}

Test(workpool, a_full_lane_refuses_at_once_and_the_other_still_takes_work)
{
    done_count = 0;
    pthread_mutex_lock(&gate);
    workpool_start(1, 2);
    /* one job held by the thread (maybe not yet taken), then the queue fills */
    int queued = 0;
    while (workpool_submit_batch(blocked_work, count_done, NULL, post_inline, NULL) == 0)
        queued++;
    cr_assert(queued >= 2 && queued <= 3, "queued %d", queued);
    cr_assert_eq(workpool_submit(blocked_work, count_done, NULL, post_inline, NULL), 0);
    pthread_mutex_unlock(&gate);
    wait_done(queued + 1);
    workpool_stop();
}

static _Atomic int done_policy_idle;
static _Atomic int ran;

static void count_work(void *arg)
{
    (void)arg;
    ran++;
}

static void policy_done(void *arg)
{
    (void)arg;
    int policy;
    struct sched_param sp;
    pthread_getschedparam(pthread_self(), &policy, &sp);
    if (policy == SCHED_IDLE)
        done_policy_idle++;
    count_done(NULL);
}

Test(workpool, batch_completions_come_once_each_from_a_normal_thread_and_stop_drains)
{
    done_count = 0;
    workpool_start(2, 1000);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(workpool_submit_batch(count_work, policy_done, NULL, post_inline, NULL), 0);
    /* no waiting: the stop itself must run and deliver everything queued */
    workpool_stop();
    cr_assert_eq(ran, 500);
    cr_assert_eq(done_count, 500);
    cr_assert_eq(done_policy_idle, 0);
    cr_assert_eq(workpool_submit_batch(count_work, policy_done, NULL, post_inline, NULL), -1);
}
