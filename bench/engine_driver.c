/*
 * engine_driver: write then read back N stacks through one state engine,
 * timing each phase (bench/pulumi_bench.sh builds and runs it).
 *
 *   engine_driver local|pulumi STATE_DIR NSTACKS NOUTPUTS
 *
 * Every stack gets NOUTPUTS plain outputs, one secret output and a secret
 * state, so the passphrase (ORCHD_PASSPHRASE) must be set.  Prints one line:
 *   engine=E stacks=N write_ms=W read_ms=R per_stack_ms=P
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interfaces/engine.h"
#include "util.h"

int main(int argc, char **argv)
{
	struct orchd_engine_config cfg = {ORCHD_ENGINE_LOCAL, NULL, NULL, {0}};
	struct orchd_engine *e;
	long long t0, t1, t2;
	long nstacks, nout;
	char err[2048];

	if (argc != 5) {
		fprintf(stderr, "usage: engine_driver local|pulumi STATE_DIR NSTACKS NOUTPUTS\n");
		return 2;
	}
	if (!strcmp(argv[1], "pulumi"))
		cfg.type = ORCHD_ENGINE_PULUMI;
	nstacks = atol(argv[3]);
	nout = atol(argv[4]);
	if (orchd_engine_open(&cfg, argv[2], "bench", &e, err, sizeof(err))) {
		fprintf(stderr, "engine_driver: %s\n", err);
		return 1;
	}
	t0 = now_ms();
	for (long i = 0; i < nstacks; i++) {
		struct orchd_stack_record rec;
		char *stack = xasprintf("bench-exec-s%ld", i);

		orchd_stack_record_init(&rec);
		for (long k = 0; k < nout; k++) {
			char *key = xasprintf("output_%ld", k);

			orchd_stack_record_set_output(
				&rec, key, json_object_new_string("value-0123456789abcdef"), 0);
			free(key);
		}
		orchd_stack_record_set_output(&rec, "password", json_object_new_string("s3cret"),
					      1);
		rec.state = json_tokener_parse("{\"token\": \"t0k3n\", \"n\": 1}");
		rec.state_secret = 1;
		rec.config_hash = xstrdup("config");
		rec.last.run_id = xasprintf("r-%ld", i);
		rec.last.action = xstrdup("apply");
		rec.last.status = xstrdup("succeeded");
		rec.last.attempts = 1;
		if (orchd_engine_write(e, stack, &rec, err, sizeof(err))) {
			fprintf(stderr, "engine_driver: %s\n", err);
			return 1;
		}
		orchd_stack_record_release(&rec);
		free(stack);
	}
	t1 = now_ms();
	for (long i = 0; i < nstacks; i++) {
		struct orchd_stack_record rec;
		char *stack = xasprintf("bench-exec-s%ld", i);

		orchd_stack_record_init(&rec);
		if (orchd_engine_read(e, stack, &rec, err, sizeof(err))) {
			fprintf(stderr, "engine_driver: read %s: %s\n", stack, err);
			return 1;
		}
		orchd_stack_record_release(&rec);
		free(stack);
	}
	t2 = now_ms();
	orchd_engine_close(e);
	printf("engine=%s stacks=%ld write_ms=%lld read_ms=%lld per_stack_ms=%.1f\n", argv[1],
	       nstacks, t1 - t0, t2 - t1, nstacks ? (double)(t2 - t0) / (double)nstacks : 0.0);
	return 0;
}
