/*
 * core/worker: one thread running slow jobs (see worker.h).
 */
#include "core/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

struct orchd_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* under lock: jobs to run, jobs run (FIFO lists), stop request */
	struct orchd_job *todo, **todo_tail;
	struct orchd_job *finished, **finished_tail;
	int stop;
	int efd; /* eventfd: readable while finished is not empty */
	void (*batch_end)(struct orchd_job **jobs, size_t n, void *arg);
	void *batch_arg;
	char name[32];
};

static void *worker_main(void *arg)
{
	struct orchd_worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct orchd_job *batch[ORCHD_WORKER_BATCH];
		size_t n = 0, max = w->batch_end ? ORCHD_WORKER_BATCH : 1;
		uint64_t one = 1;

		while (!w->todo && !w->stop)
			pthread_cond_wait(&w->wake, &w->lock);
		if (!w->todo)
			break;
		/* what is queued now (one job without group commit) */
		while (w->todo && n < max) {
			batch[n++] = w->todo;
			w->todo = w->todo->next;
		}
		if (!w->todo)
			w->todo_tail = &w->todo;
		pthread_mutex_unlock(&w->lock);
		for (size_t i = 0; i < n; i++)
			batch[i]->run(batch[i]);
		if (w->batch_end)
			w->batch_end(batch, n, w->batch_arg);
		pthread_mutex_lock(&w->lock);
		for (size_t i = 0; i < n; i++) {
			batch[i]->next = NULL;
			*w->finished_tail = batch[i];
			w->finished_tail = &batch[i]->next;
		}
		/* the counter only says "something finished" */
		while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct orchd_worker *orchd_worker_new(const char *name)
{
	struct orchd_worker *w = xcalloc(1, sizeof(*w));
	int e;

	snprintf(w->name, sizeof(w->name), "%s", name ? name : "worker");
	w->todo_tail = &w->todo;
	w->finished_tail = &w->finished;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		error("cannot start the %s worker: eventfd: %s", w->name, strerror(errno));
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	e = orchd_thread_start(&w->thread, worker_main, w);
	if (e) {
		error("cannot start the %s worker: %s", w->name, strerror(e));
		close(w->efd);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void orchd_worker_set_batch_end(struct orchd_worker *w,
				void (*batch_end)(struct orchd_job **jobs, size_t n, void *arg),
				void *arg)
{
	pthread_mutex_lock(&w->lock);
	w->batch_end = batch_end;
	w->batch_arg = arg;
	pthread_mutex_unlock(&w->lock);
}

void orchd_worker_submit(struct orchd_worker *w, struct orchd_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->todo_tail = job;
	w->todo_tail = &job->next;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

int orchd_worker_fd(const struct orchd_worker *w)
{
	return w->efd;
}

size_t orchd_worker_collect(struct orchd_worker *w)
{
	struct orchd_job *list;
	uint64_t n;
	size_t count = 0;

	/* reset the eventfd before taking the list: a job finishing in
	 * between makes it readable again, never lost */
	while (read(w->efd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->lock);
	list = w->finished;
	w->finished = NULL;
	w->finished_tail = &w->finished;
	pthread_mutex_unlock(&w->lock);
	while (list) {
		struct orchd_job *job = list;

		list = job->next;
		count++;
		job->done(job);
	}
	return count;
}

void orchd_worker_free(struct orchd_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	/* the thread runs what is queued, then stops */
	pthread_join(w->thread, NULL);
	orchd_worker_collect(w);
	close(w->efd);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
