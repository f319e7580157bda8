/*
 * statewriter: a test helper that drives the local state engine from its
 * own process, so tests can kill it at random moments (kill -9) or run it
 * under the ENOSPC shim (LD_PRELOAD).
 *
 *   statewriter DIR STACK loop PAD     write records n=2,3,... forever;
 *                                      "w" on stdout after the first
 *   statewriter DIR STACK once N PAD   write one record n=N; exit 0, or 3
 *                                      with the engine's message on stderr
 *
 *   statewriter DIR PREFIX bench NSTACKS NOUTPUTS [secret]
 *                                      write NSTACKS stacks PREFIX-i with
 *                                      NOUTPUTS outputs each (encrypted with
 *                                      "secret"), read them all back, print
 *                                      timings (bench/outputs_bench.sh)
 *
 *   statewriter DIR STACK history N    append N history entries r-1..r-N;
 *                                      exit 0, or 3 with the message
 *
 *   statewriter DIR PREFIX commit N K  take the lock, write N records of
 *                                      stacks PREFIX-0..N-1 in group
 *                                      commits of K, unlock; print the time
 *                                      (bench/commit_bench.sh)
 *
 *   statewriter DIR PREFIX batch K PAD take the lock, then for n=1,2,...
 *                                      forever: records n of PREFIX-0 ..
 *                                      PREFIX-(K-1) as one group commit
 *                                      (write_deferred each, one sync),
 *                                      then "n\n" on stdout
 *
 * A record n holds state {"n": n, "pad": P} and outputs n and pad with the
 * same values, P being PAD bytes of 'x', so a reader can tell a whole
 * record from a mix of two.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "interfaces/engine.h"
#include "util.h"

static int write_one_deferred(struct orchd_engine *e, const char *stack, long n, const char *pad,
			      int deferred, char *err, size_t errlen)
{
	struct orchd_stack_record rec;
	int ret;

	orchd_stack_record_init(&rec);
	rec.state = json_object_new_object();
	json_object_object_add(rec.state, "n", json_object_new_int64(n));
	json_object_object_add(rec.state, "pad", json_object_new_string(pad));
	orchd_stack_record_set_output(&rec, "n", json_object_new_int64(n), 0);
	orchd_stack_record_set_output(&rec, "pad", json_object_new_string(pad), 0);
	rec.config_hash = xasprintf("config-%ld", n);
	rec.last.run_id = xasprintf("r-%ld", n);
	rec.last.action = xstrdup("apply");
	rec.last.status = xstrdup("succeeded");
	rec.last.attempts = 1;
	ret = deferred ? orchd_engine_write_deferred(e, stack, &rec, err, errlen)
		       : orchd_engine_write(e, stack, &rec, err, errlen);
	orchd_stack_record_release(&rec);
	return ret;
}

static int write_one(struct orchd_engine *e, const char *stack, long n, const char *pad, char *err,
		     size_t errlen)
{
	return write_one_deferred(e, stack, n, pad, 0, err, errlen);
}

/* batch mode: group commits of k records until killed. */
static int batches(struct orchd_engine *e, const char *prefix, long k, const char *pad)
{
	struct orchd_lock_request req = {0};
	char err[1024];

	req.run_id = "r-batch";
	req.command = "statewriter";
	if (orchd_engine_lock(e, &req, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	for (long n = 1;; n++) {
		char line[32];
		int len;

		for (long i = 0; i < k; i++) {
			char *stack = xasprintf("%s-%ld", prefix, i);
			int r = write_one_deferred(e, stack, n, pad, 1, err, sizeof(err));

			free(stack);
			if (r) {
				fprintf(stderr, "%s\n", err);
				return 3;
			}
		}
		if (orchd_engine_sync(e, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		len = snprintf(line, sizeof(line), "%ld\n", n);
		if (write(1, line, (size_t)len) != len)
			return 3;
	}
}

static int bench(struct orchd_engine *e, const char *prefix, long nstacks, long nout, int secret)
{
	long long t0, t1, t2;
	char err[1024];

	t0 = now_ms();
	for (long i = 0; i < nstacks; i++) {
		struct orchd_stack_record rec;
		char *stack = xasprintf("%s-%ld", prefix, i);

		orchd_stack_record_init(&rec);
		for (long k = 0; k < nout; k++) {
			char *key = xasprintf("output_%ld", k);
			char *val = xasprintf("value-%ld-%ld-0123456789abcdef", i, k);

			orchd_stack_record_set_output(&rec, key, json_object_new_string(val),
						      secret);
			free(key);
			free(val);
		}
		if (orchd_engine_write(e, stack, &rec, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		orchd_stack_record_release(&rec);
		free(stack);
	}
	t1 = now_ms();
	for (long i = 0; i < nstacks; i++) {
		struct orchd_stack_record rec;
		char *stack = xasprintf("%s-%ld", prefix, i);

		orchd_stack_record_init(&rec);
		if (orchd_engine_read(e, stack, &rec, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		orchd_stack_record_release(&rec);
		free(stack);
	}
	t2 = now_ms();
	printf("stacks=%ld outputs=%ld secret=%d write_ms=%lld read_ms=%lld\n", nstacks, nout,
	       secret, t1 - t0, t2 - t1);
	return 0;
}

int main(int argc, char **argv)
{
	struct orchd_engine_config cfg = {.type = ORCHD_ENGINE_LOCAL};
	struct orchd_engine *e;
	char err[1024], *pad;
	long n = 1;
	size_t padlen;
	int ret = 0;

	set_progname("statewriter");
	if (argc >= 6 && !strcmp(argv[3], "bench")) {
		if (orchd_engine_open(&cfg, argv[1], "bench", &e, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		ret = bench(e, argv[2], atol(argv[4]), atol(argv[5]),
			    argc > 6 && !strcmp(argv[6], "secret"));
		orchd_engine_close(e);
		return ret;
	}
	if (argc == 6 && !strcmp(argv[3], "commit")) {
		struct orchd_lock_request req = {"r-bench", "statewriter", 0};
		long total = atol(argv[4]), k = atol(argv[5]);
		long long t0, t1;

		if (orchd_engine_open(&cfg, argv[1], "bench", &e, err, sizeof(err)) ||
		    orchd_engine_lock(e, &req, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		t0 = now_ms();
		for (long i = 0; i < total && !ret; i++) {
			char *stack = xasprintf("%s-%ld", argv[2], i);

			if (write_one_deferred(e, stack, i, "p", 1, err, sizeof(err)) ||
			    ((i + 1) % k == 0 && orchd_engine_sync(e, err, sizeof(err)))) {
				fprintf(stderr, "%s\n", err);
				ret = 3;
			}
			free(stack);
		}
		if (!ret && (orchd_engine_sync(e, err, sizeof(err)) ||
			     orchd_engine_unlock(e, err, sizeof(err)))) {
			fprintf(stderr, "%s\n", err);
			ret = 3;
		}
		t1 = now_ms();
		printf("records=%ld batch=%ld ms=%lld\n", total, k, t1 - t0);
		orchd_engine_close(e);
		return ret;
	}
	if (argc == 6 && !strcmp(argv[3], "batch")) {
		padlen = (size_t)atol(argv[5]);
		pad = xmalloc(padlen + 1);
		memset(pad, 'x', padlen);
		pad[padlen] = '\0';
		if (orchd_engine_open(&cfg, argv[1], "test", &e, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		return batches(e, argv[2], atol(argv[4]), pad);
	}
	if (argc == 5 && !strcmp(argv[3], "history")) {
		if (orchd_engine_open(&cfg, argv[1], "test", &e, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		for (long i = 1; i <= atol(argv[4]) && !ret; i++) {
			char *id = xasprintf("r-%ld", i);
			char apply[] = "apply", ok[] = "succeeded";
			struct orchd_history_entry h = {id, apply, ok, i, i + 1, 1};

			if (orchd_engine_history_append(e, argv[2], &h, err, sizeof(err))) {
				fprintf(stderr, "%s\n", err);
				ret = 3;
			}
			free(id);
		}
		orchd_engine_close(e);
		return ret;
	}
	if (argc < 5 || (strcmp(argv[3], "loop") && strcmp(argv[3], "once")) ||
	    (!strcmp(argv[3], "once") && argc < 6)) {
		fprintf(stderr, "usage: statewriter DIR STACK loop PAD | once N PAD\n");
		return 2;
	}
	if (!strcmp(argv[3], "once")) {
		n = atol(argv[4]);
		padlen = (size_t)atol(argv[5]);
	} else {
		n = 2;
		padlen = (size_t)atol(argv[4]);
	}
	pad = xmalloc(padlen + 1);
	memset(pad, 'x', padlen);
	pad[padlen] = '\0';
	if (orchd_engine_open(&cfg, argv[1], "test", &e, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	if (!strcmp(argv[3], "once")) {
		if (write_one(e, argv[2], n, pad, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			ret = 3;
		}
	} else {
		for (;; n++) {
			if (write_one(e, argv[2], n, pad, err, sizeof(err))) {
				fprintf(stderr, "%s\n", err);
				ret = 3;
				break;
			}
			if (n == 2 && (write(1, "w", 1) != 1 || close(1)))
				return 3;
		}
	}
	orchd_engine_close(e);
	free(pad);
	return ret;
}
