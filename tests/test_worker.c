/*
 * core/worker: jobs run on another thread, in order; their done callbacks
 * run on the caller's thread, in order, once it collects; the fd tells.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/worker.h"
#include "testutil.h"
#include "util.h"

struct tjob {
	struct orchd_job job;
	int n;
	pthread_t ran_on;
	int *order; /* where done writes n */
	size_t *ndone;
	pthread_t done_on;
	useconds_t sleep_us;
};

static void tjob_run(struct orchd_job *job)
{
	struct tjob *t = (struct tjob *)job;

	if (t->sleep_us)
		usleep(t->sleep_us);
	t->ran_on = pthread_self();
}

static pthread_t main_thread;
static int bad_thread;

static void tjob_done(struct orchd_job *job)
{
	struct tjob *t = (struct tjob *)job;

	if (!pthread_equal(pthread_self(), main_thread) || pthread_equal(t->ran_on, main_thread))
		bad_thread = 1;
	t->order[(*t->ndone)++] = t->n;
	free(t);
}

static struct tjob *tjob_new(int n, int *order, size_t *ndone, useconds_t sleep_us)
{
	struct tjob *t = xcalloc(1, sizeof(*t));

	t->job.run = tjob_run;
	t->job.done = tjob_done;
	t->n = n;
	t->order = order;
	t->ndone = ndone;
	t->sleep_us = sleep_us;
	return t;
}

START_TEST(test_order_threads_and_fd)
{
	struct orchd_worker *w = orchd_worker_new("test");
	int order[20];
	size_t ndone = 0, got = 0;

	main_thread = pthread_self();
	bad_thread = 0;
	ck_assert_ptr_nonnull(w);
	/* nothing finished: not readable, nothing collected */
	{
		struct pollfd p = {orchd_worker_fd(w), POLLIN, 0};

		ck_assert_int_eq(poll(&p, 1, 0), 0);
		ck_assert_uint_eq(orchd_worker_collect(w), 0);
	}
	/* the first job is slow: the others wait behind it (one thread, in order) */
	for (int i = 0; i < 20; i++)
		orchd_worker_submit(w, &tjob_new(i, order, &ndone, i == 0 ? 100000 : 0)->job);
	ck_assert_uint_eq(ndone, 0); /* done callbacks only from collect */
	while (got < 20) {
		struct pollfd p = {orchd_worker_fd(w), POLLIN, 0};

		ck_assert_int_eq(poll(&p, 1, 10000), 1);
		got += orchd_worker_collect(w);
	}
	ck_assert_uint_eq(ndone, 20);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(order[i], i);
	ck_assert_int_eq(bad_thread, 0);
	orchd_worker_free(w);
}
END_TEST

/* free() waits for what is queued and runs its done callbacks. */
START_TEST(test_free_finishes_the_queue)
{
	struct orchd_worker *w = orchd_worker_new("test");
	int order[5];
	size_t ndone = 0;

	main_thread = pthread_self();
	for (int i = 0; i < 5; i++)
		orchd_worker_submit(w, &tjob_new(i, order, &ndone, 20000)->job);
	orchd_worker_free(w);
	ck_assert_uint_eq(ndone, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(order[i], i);
	orchd_worker_free(NULL);
}
END_TEST

Suite *worker_suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("worker");

	tcase_add_test(tc, test_order_threads_and_fd);
	tcase_add_test(tc, test_free_finishes_the_queue);
	suite_add_tcase(s, tc);
	return s;
}
