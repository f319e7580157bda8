/*
 * fuzz_local: the record and history readers of the local state engine
 * (orchestrator/interfaces/local.c), through the engine API of
 * interfaces/engine.h.
 *
 * Input: the bytes of a stack file: each run writes them as
 * STATE_DIR/stacks/fz.json and as its history, fz.history.jsonl.
 * LLVMFuzzerInitialize creates the state directory once (under /dev/shm
 * when it can, so that the fsyncs of write-back cost nothing) with a fixed
 * crypto.json (below; passphrase "orchd-fuzz"), and opens two engines on
 * it for the whole session: one with the passphrase (secrets decrypted),
 * one without (secrets masked).  The key is derived once, there.
 *
 * Checks, for each input:
 *   - read returns 0 or -1; -1 comes with a message and an empty record
 *     (never a crash, a leak or a partial record); history_read and list
 *     succeed (a torn or unreadable history line is skipped);
 *   - a record read without the passphrase and written back is read back
 *     the same, and with the passphrase it still reads as before (masked
 *     secrets are carried over, never lost); a failed write leaves the file
 *     as it was;
 *   - a record read with the passphrase and written back reads back the
 *     same.
 *
 * ORCHD_FUZZ_SEEDS=DIR: LLVMFuzzerInitialize also writes a few records
 * made by the engine itself (plain and secret outputs and state, history)
 * into DIR, the seed corpus of `make fuzz`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "interfaces/engine.h"
#include "orchd_protocol.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASSPHRASE "orchd-fuzz"
#define STACK	   "fz"

/* Made once by the engine with PASSPHRASE (a fixed salt, so that seeds
 * holding secrets decrypt in every session). */
static const char crypto_json[] = "{\n"
				  "  \"format\": \"orchd-crypto\",\n"
				  "  \"version\": 1,\n"
				  "  \"kdf\": \"scrypt\",\n"
				  "  \"salt\": \"bPKO07AJ3bvthieCAZCPcQ==\",\n"
				  "  \"N\": 32768,\n"
				  "  \"r\": 8,\n"
				  "  \"p\": 1,\n"
				  "  \"check\": {\n"
				  "    \"enc\": \"aes-256-gcm\",\n"
				  "    \"nonce\": \"bSRtnaC2LoJD9fYX\",\n"
				  "    \"ct\": \"GB6+qN2V4sF53BuZoVVTRZ2PfPHfuoHWvfVoLTGUsg==\"\n"
				  "  }\n"
				  "}\n";

static char state_dir[4096], stacks_dir[4200], rec_path[4300], hist_path[4300];
static struct orchd_engine *with_pass, *no_pass;

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK(len == 0 || write(fd, data, len) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

/* The whole file, malloc'ed, NUL-terminated; NULL if missing. */
static char *slurp(const char *path, size_t *len)
{
	struct op_buf sb = OP_BUF_INIT;
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		op_buf_add(&sb, chunk, (size_t)n);
	CHECK(n == 0);
	close(fd);
	return op_buf_detach(&sb, len);
}

static void cleanup(void)
{
	char path[4400];

	orchd_engine_close(with_pass);
	orchd_engine_close(no_pass);
	unlink(rec_path);
	unlink(hist_path);
	rmdir(stacks_dir);
	snprintf(path, sizeof(path), "%s/crypto.json", state_dir);
	unlink(path);
	rmdir(state_dir);
}

/* Everything a record holds, as one string, to compare two of them. */
static char *rec_text(const struct orchd_stack_record *rec)
{
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "state", json_object_get(rec->state));
	json_object_object_add(o, "state_secret", json_object_new_int(rec->state_secret));
	json_object_object_add(o, "state_masked", json_object_new_int(rec->state_masked));
	json_object_object_add(o, "outputs", json_object_get(rec->outputs));
	json_object_object_add(o, "masked", json_object_new_int(rec->masked));
	orchd_record_meta_to_json(rec, o);
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int read_rec(struct orchd_engine *e, struct orchd_stack_record *rec)
{
	char err[1024] = "";
	int r;

	orchd_stack_record_init(rec);
	r = orchd_engine_read(e, STACK, rec, err, sizeof(err));
	CHECK(r == 0 || r == -1);
	if (r < 0) {
		CHECK(err[0] != '\0');
		CHECK(!rec->state && !rec->config_hash && !rec->inputs_hash && !rec->last.run_id &&
		      !rec->masked);
		CHECK(rec->outputs && json_object_object_length(rec->outputs) == 0);
	}
	return r;
}

/* Write rec back as the stack's record; 0 when it was written, else -1
 * with the file unchanged. */
static int write_back(struct orchd_engine *e, const struct orchd_stack_record *rec)
{
	char err[1024] = "", *before, *after;
	size_t blen = 0, alen = 0;
	int r;

	before = slurp(rec_path, &blen);
	CHECK(before);
	r = orchd_engine_write(e, STACK, rec, err, sizeof(err));
	CHECK(r == 0 || r == -1);
	if (r < 0) {
		CHECK(err[0] != '\0');
		after = slurp(rec_path, &alen);
		CHECK(after && alen == blen && !memcmp(before, after, blen));
		free(after);
	}
	free(before);
	return r;
}

/* Write rec back with e, read it back with e: the same record. */
static void round_trip(struct orchd_engine *e, const struct orchd_stack_record *rec,
		       const char *text)
{
	struct orchd_stack_record again;
	char *t;

	if (write_back(e, rec) < 0)
		return;
	CHECK(read_rec(e, &again) == 0);
	t = rec_text(&again);
	if (strcmp(t, text)) {
		fprintf(stderr, "before: %s\nafter:  %s\n", text, t);
		CHECK(!"a record written back reads back the same");
	}
	free(t);
	orchd_stack_record_release(&again);
}

static void write_seeds(const char *dir)
{
	static const char *const texts[] = {"plain", "with secrets", "with history"};
	char err[1024], path[4400], *buf;
	size_t len;

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct orchd_stack_record rec;
		char run_id[] = "r-1", action[] = "apply", status[] = "succeeded";
		struct orchd_history_entry h = {run_id, action, status, 1000, 2000, 1};

		orchd_stack_record_init(&rec);
		rec.state = json_tokener_parse("{\"id\":\"x-1\",\"n\":[1,2.5,true,null]}");
		orchd_stack_record_set_output(&rec, "ip", json_object_new_string("10.0.0.1"), 0);
		orchd_stack_record_set_output(&rec, "port", json_object_new_int(8080), 0);
		if (i == 1) {
			rec.state_secret = 1;
			orchd_stack_record_set_output(&rec, "password",
						      json_object_new_string("hunter2"), 1);
		}
		rec.config_hash = xstrdup("0123456789abcdef");
		rec.last.run_id = xstrdup("r-1");
		rec.last.action = xstrdup("apply");
		rec.last.status = xstrdup("succeeded");
		rec.last.attempts = 1;
		unlink(rec_path);
		unlink(hist_path);
		CHECK(orchd_engine_write(with_pass, STACK, &rec, err, sizeof(err)) == 0);
		orchd_stack_record_release(&rec);
		buf = slurp(rec_path, &len);
		CHECK(buf);
		snprintf(path, sizeof(path), "%s/record-%zu.json", dir, i);
		write_file(path, buf, len);
		free(buf);
		if (i == 2) {
			for (int k = 0; k < 3; k++)
				CHECK(orchd_engine_history_append(with_pass, STACK, &h, err,
								  sizeof(err)) == 0);
			buf = slurp(hist_path, &len);
			CHECK(buf);
			snprintf(path, sizeof(path), "%s/history.jsonl", dir);
			write_file(path, buf, len);
			free(buf);
		}
	}
	unlink(rec_path);
	unlink(hist_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct orchd_engine_config cfg;
	const char *tmp = getenv("TMPDIR"), *seeds = getenv("ORCHD_FUZZ_SEEDS");
	char err[1024], path[4400];
	struct orchd_stack_record rec;

	(void)argc;
	(void)argv;
	if (access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(state_dir, sizeof(state_dir), "%s/orchd-fuzz-state.XXXXXX", tmp);
	CHECK(mkdtemp(state_dir));
	snprintf(stacks_dir, sizeof(stacks_dir), "%s/stacks", state_dir);
	snprintf(rec_path, sizeof(rec_path), "%s/" STACK ".json", stacks_dir);
	snprintf(hist_path, sizeof(hist_path), "%s/" STACK ".history.jsonl", stacks_dir);
	CHECK(mkdir(stacks_dir, 0700) == 0);
	snprintf(path, sizeof(path), "%s/crypto.json", state_dir);
	write_file(path, crypto_json, strlen(crypto_json));

	memset(&cfg, 0, sizeof(cfg));
	cfg.type = ORCHD_ENGINE_LOCAL;
	unsetenv("ORCHD_PASSPHRASE_FILE");
	unsetenv("ORCHD_PASSPHRASE");
	CHECK(orchd_engine_open(&cfg, state_dir, "fuzz", &no_pass, err, sizeof(err)) == 0);
	setenv("ORCHD_PASSPHRASE", PASSPHRASE, 1);
	CHECK(orchd_engine_open(&cfg, state_dir, "fuzz", &with_pass, err, sizeof(err)) == 0);
	unsetenv("ORCHD_PASSPHRASE");
	atexit(cleanup);

	/* derive the key now, once: a secret written and removed */
	orchd_stack_record_init(&rec);
	orchd_stack_record_set_output(&rec, "k", json_object_new_string("v"), 1);
	if (orchd_engine_write(with_pass, STACK, &rec, err, sizeof(err))) {
		fprintf(stderr, "fuzz_local: %s\n", err);
		abort();
	}
	orchd_stack_record_release(&rec);
	if (seeds)
		write_seeds(seeds);
	unlink(rec_path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct orchd_stack_record a, b, a2;
	struct orchd_history_entry *hist;
	char err[1024], **names, *ta = NULL, *tb;
	size_t n;
	int ra, rb;

	write_file(rec_path, data, size);
	write_file(hist_path, data, size);

	CHECK(orchd_engine_history_read(with_pass, STACK, &hist, &n, err, sizeof(err)) == 0);
	orchd_history_free(hist, n);
	CHECK(orchd_engine_list(with_pass, &names, &n, err, sizeof(err)) == 0);
	CHECK(n == 1 && !strcmp(names[0], STACK));
	orchd_engine_names_free(names, n);
	CHECK(orchd_engine_select(no_pass, STACK, 0, err, sizeof(err)) == 0);

	ra = read_rec(with_pass, &a);
	if (!ra)
		ta = rec_text(&a);
	rb = read_rec(no_pass, &b);
	if (!rb) {
		tb = rec_text(&b);
		round_trip(no_pass, &b, tb);
		free(tb);
		/* what the passphrase reads is unchanged by that write-back */
		if (!ra) {
			char *t;

			CHECK(read_rec(with_pass, &a2) == 0);
			t = rec_text(&a2);
			if (strcmp(t, ta)) {
				fprintf(stderr, "before: %s\nafter:  %s\n", ta, t);
				CHECK(!"a write-back without the passphrase keeps what it masks");
			}
			free(t);
			orchd_stack_record_release(&a2);
		}
	}
	if (!ra)
		round_trip(with_pass, &a, ta);
	free(ta);
	orchd_stack_record_release(&a);
	orchd_stack_record_release(&b);
	return 0;
}
