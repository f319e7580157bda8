/*
 * Tests of orchd-ext-secrets, driven as a real process over real pipes,
 * with the real sops and age: an age key pair is generated with age-keygen
 * at test time, a YAML file is encrypted with `sops --encrypt --age` and a
 * file with `age -r`.  A missing tool is a failure (run `make tools`).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extdriver.h"
#include "orchd_protocol.h"
#include "testutil.h"

/* The plaintexts: none of them may appear anywhere but in output messages. */
#define V_ENV  "env-Jj77-value"
#define V_FILE "file-Kk12-content"
#define V_DB   "pw-Zq81-sops-db"
#define V_API  "tok-Hx55-sops-api"
#define V_AGE  "age-Vv09-plaintext"

static const char *const plaintexts[] = {V_ENV, V_FILE, V_DB, V_API, V_AGE, NULL};

/* --- fixture: keys and encrypted files, made once per tcase ---------------- */

static struct {
	char *dir;	 /* temp dir: the "pipeline directory" */
	char *recipient; /* age public key */
	char err[512];	 /* setup failure, reported by every test */
} fx;

/* Absolute path of a tool on PATH, or NULL. */
static char *which(const char *tool)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL, *found = NULL;

	if (!path)
		return NULL;
	copy = strdup(path);
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *p;

		if (asprintf(&p, "%s/%s", d, tool) < 0)
			break;
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

static int write_file(const char *dir, const char *name, const char *text)
{
	char *p;
	FILE *f;
	int ret = -1;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return -1;
	f = fopen(p, "w");
	if (f) {
		ret = fputs(text, f) < 0 ? -1 : 0;
		ret |= fclose(f);
	}
	free(p);
	return ret;
}

/* Run a tool (looked up on PATH) in fx.dir; stdout into *out if given. */
static int tool(char **out, const char *name, const char *a1, const char *a2, const char *a3,
		const char *a4, const char *a5, const char *a6)
{
	char *exe = which(name), *err = NULL, cwd[4096];
	char *argv[] = {exe,
			(char *)(uintptr_t)a1,
			(char *)(uintptr_t)a2,
			(char *)(uintptr_t)a3,
			(char *)(uintptr_t)a4,
			(char *)(uintptr_t)a5,
			(char *)(uintptr_t)a6,
			NULL};
	int rc;

	if (!exe) {
		snprintf(
			fx.err, sizeof(fx.err),
			"%s not found on PATH: run `make tools` (tests need the real sops and age)",
			name);
		return -1;
	}
	if (!getcwd(cwd, sizeof(cwd)) || chdir(fx.dir) < 0)
		return -1;
	rc = test_run(argv, out, &err);
	if (chdir(cwd) < 0)
		rc = -1;
	if (rc != 0)
		snprintf(fx.err, sizeof(fx.err), "%s %s failed (%d): %s", name, a1, rc,
			 err ? err : "");
	free(err);
	free(exe);
	return rc ? -1 : 0;
}

static void fixture_setup(void)
{
	char *out = NULL, *enc = NULL;

	memset(&fx, 0, sizeof(fx));
	fx.dir = test_tmpdir();
	if (tool(NULL, "age-keygen", "-o", "key.txt", NULL, NULL, NULL, NULL) ||
	    tool(&out, "age-keygen", "-y", "key.txt", NULL, NULL, NULL, NULL))
		return;
	out[strcspn(out, "\n")] = '\0';
	fx.recipient = out;
	if (write_file(fx.dir, "plain.yaml",
		       "db:\n  password: " V_DB "\n  port: 5432\napi_token: " V_API
		       "\nhosts: [alpha, beta]\n") ||
	    write_file(fx.dir, "age-plain.txt", V_AGE "\n") ||
	    write_file(fx.dir, "file.txt", V_FILE "\n")) {
		snprintf(fx.err, sizeof(fx.err), "cannot write fixtures: %s", strerror(errno));
		return;
	}
	if (tool(&enc, "sops", "--encrypt", "--age", fx.recipient, "plain.yaml", NULL, NULL))
		return;
	if (write_file(fx.dir, "secrets.enc.yaml", enc) ||
	    tool(NULL, "age", "-r", fx.recipient, "-o", "file.age", "age-plain.txt", NULL))
		snprintf(fx.err, sizeof(fx.err), "cannot encrypt fixtures");
	free(enc);
	/* the plaintext copies must not be what the extension reads */
	if (write_file(fx.dir, "plain.yaml", "") || write_file(fx.dir, "age-plain.txt", ""))
		snprintf(fx.err, sizeof(fx.err), "cannot wipe plaintext fixtures");
}

static void fixture_teardown(void)
{
	test_rmtree(fx.dir);
	free(fx.dir);
	free(fx.recipient);
	memset(&fx, 0, sizeof(fx));
}

static void need_fixture(void)
{
	if (fx.err[0])
		ck_abort_msg("%s", fx.err);
}

/* --- driver ------------------------------------------------------------------ */

struct drv_opts {
	const char *action;
	const char *config;	  /* JSON text */
	const char *state;	  /* JSON text, NULL: null */
	const char *const *env;	  /* "NAME=VALUE" added, NULL-terminated, or NULL */
	const char *path_prefix;  /* directory put first on PATH, or NULL */
	const char *pipeline_dir; /* ORCHD_PIPELINE_DIR, NULL: fx.dir */
};

/* Run one action of orchd-ext-secrets with cwd = ORCHD_PIPELINE_DIR = fx.dir. */
static void drive(const struct drv_opts *o, struct extdrv *d)
{
	/* the sops key of the user's home must not make a test pass */
	static const char *const unset[] = {"SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD",
					    NULL};
	char *exe = test_build_path("libexec/orchd/extensions/orchd-ext-secrets");
	struct extdrv_opts eo = {
		.exe = exe,
		.action = o->action,
		.config_text = o->config,
		.state_text = o->state,
		.instance_id = "dev-secrets-t",
		.workdir = fx.dir,
		.pipeline_dir = o->pipeline_dir ? o->pipeline_dir : fx.dir,
		.home = fx.dir,
		.path_prefix = o->path_prefix,
		.unset = unset,
		.env = o->env,
		.capture_stderr = true,
		.expect_result = true,
	};

	need_fixture();
	extdrv_run(&eo, d);
	free(exe);
	ck_assert_str_eq(d->nonproto, "");
}

static const char *status_of(const struct extdrv *d)
{
	return op_get_str(d->result, "status");
}

static size_t count(const struct extdrv *d, const char *type)
{
	size_t n = 0;

	for (size_t i = 0; i < json_object_array_length(d->msgs); i++)
		n += !strcmp(op_get_str(json_object_array_get_idx(d->msgs, i), "type"), type);
	return n;
}

/* True when a log message has exactly this level and text. */
static bool has_log(const struct extdrv *d, const char *level, const char *text)
{
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);

		if (!strcmp(op_get_str(m, "type"), "log") &&
		    !strcmp(op_get_str(m, "level"), level) &&
		    !strcmp(op_get_str(m, "message"), text))
			return true;
	}
	return false;
}

/* No plaintext in any message but outputs, nor on stderr. */
static void assert_no_plaintext(const struct extdrv *d)
{
	for (size_t i = 0; i < json_object_array_length(d->msgs); i++) {
		struct json_object *m = json_object_array_get_idx(d->msgs, i);
		const char *text = json_object_to_json_string(m);

		if (!strcmp(op_get_str(m, "type"), "output"))
			continue;
		for (size_t k = 0; plaintexts[k]; k++)
			ck_assert_msg(!strstr(text, plaintexts[k]), "plaintext %s leaked in %s",
				      plaintexts[k], text);
	}
	for (size_t k = 0; plaintexts[k]; k++)
		ck_assert_msg(!strstr(d->stderr_text, plaintexts[k]),
			      "plaintext %s leaked on stderr: %s", plaintexts[k], d->stderr_text);
}

static void assert_output(const struct extdrv *d, const char *key, const char *value)
{
	struct json_object *m = extdrv_find_first(d, "output", "key", key);

	ck_assert_msg(m != NULL, "no output '%s'", key);
	ck_assert_str_eq(json_object_get_string(op_get(m, "value")), value);
	ck_assert_msg(op_get_bool(m, "secret", false), "output '%s' not secret", key);
}

#define ALL_SOURCES                                                                           \
	"{\"age_key_file\":\"key.txt\",\"values\":{"                                          \
	"\"token\":{\"env\":\"SECRETS_TEST_TOKEN\"},"                                         \
	"\"cert\":{\"file\":\"file.txt\"},"                                                   \
	"\"db\":{\"sops\":{\"file\":\"secrets.enc.yaml\",\"key\":\"db.password\"}},"          \
	"\"api\":{\"sops\":{\"file\":\"secrets.enc.yaml\",\"key\":\"[\\\"api_token\\\"]\"}}," \
	"\"host\":{\"sops\":{\"file\":\"secrets.enc.yaml\",\"key\":\"hosts[1]\"}},"           \
	"\"blob\":{\"age\":{\"file\":\"file.age\",\"identity\":\"key.txt\"}}}}"

static const char *const token_env[] = {"SECRETS_TEST_TOKEN=" V_ENV, NULL};

/* sha256sum of salt || value, by the real sha256sum. */
static char *sha256_of(const char *salt, const char *value)
{
	char *text, *exe = which("sha256sum"), *out = NULL, *p;
	char *argv[3] = {exe, NULL, NULL};

	ck_assert_ptr_nonnull(exe);
	ck_assert_int_ge(asprintf(&text, "%s%s", salt, value), 0);
	ck_assert_int_eq(write_file(fx.dir, "hashme", text), 0);
	ck_assert_int_ge(asprintf(&p, "%s/hashme", fx.dir), 0);
	argv[1] = p;
	ck_assert_int_eq(test_run(argv, &out, NULL), 0);
	out[64] = '\0';
	free(text);
	free(exe);
	free(p);
	return out;
}

START_TEST(apply_all_sources)
{
	struct extdrv d;
	struct json_object *st, *state, *hashes;
	char *h;

	drive(&(struct drv_opts){"apply", ALL_SOURCES, NULL, token_env, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert_str_eq(extdrv_summary(&d), "provided: token, cert, db, api, host, blob");
	assert_output(&d, "token", V_ENV);
	assert_output(&d, "cert", V_FILE);
	assert_output(&d, "db", V_DB);
	assert_output(&d, "api", V_API);
	assert_output(&d, "host", "beta");
	assert_output(&d, "blob", V_AGE);
	ck_assert_int_eq(count(&d, "output"), 6);
	/* the state: secret, salted sha256 hashes only */
	st = extdrv_find_last(&d, "state", NULL, NULL);
	ck_assert_ptr_nonnull(st);
	ck_assert(op_get_bool(st, "secret", false));
	state = op_get(st, "state");
	hashes = op_get(state, "hashes");
	ck_assert_int_eq(json_object_object_length(hashes), 6);
	h = sha256_of(op_get_str(state, "salt"), V_DB);
	ck_assert_str_eq(op_get_str(hashes, "db"), h);
	free(h);
	h = sha256_of(op_get_str(state, "salt"), V_ENV);
	ck_assert_str_eq(op_get_str(hashes, "token"), h);
	free(h);
	assert_no_plaintext(&d);
	extdrv_release(&d);
}
END_TEST

START_TEST(sops_whole_document)
{
	struct extdrv d;
	struct json_object *v;

	drive(&(struct drv_opts){"apply",
				 "{\"age_key_file\":\"key.txt\",\"values\":{\"all\":{\"sops\":"
				 "{\"file\":\"secrets.enc.yaml\"}},\"port\":{\"sops\":{\"file\":"
				 "\"secrets.enc.yaml\",\"key\":\"db.port\"}}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "success");
	v = op_get(extdrv_find_first(&d, "output", "key", "all"), "value");
	ck_assert_str_eq(op_get_str(op_get(v, "db"), "password"), V_DB);
	ck_assert_str_eq(op_get_str(v, "api_token"), V_API);
	ck_assert_int_eq(json_object_get_int(
				 op_get(extdrv_find_first(&d, "output", "key", "port"), "value")),
			 5432);
	ck_assert(op_get_bool(extdrv_find_first(&d, "output", "key", "all"), "secret", false));
	assert_no_plaintext(&d);
	extdrv_release(&d);
}
END_TEST

START_TEST(sops_key_from_pass_env)
{
	static const char *const env[] = {"SOPS_AGE_KEY_FILE=key.txt", NULL};
	struct extdrv d;

	drive(&(struct drv_opts){"apply",
				 "{\"values\":{\"db\":{\"sops\":{\"file\":\"secrets.enc.yaml\","
				 "\"key\":\"db.password\"}}}}",
				 NULL, env, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "success");
	assert_output(&d, "db", V_DB);
	extdrv_release(&d);
}
END_TEST

START_TEST(plan_names_only_and_detects_changes)
{
	static const char *const other_env[] = {"SECRETS_TEST_TOKEN=" V_ENV "-rotated", NULL};
	struct extdrv d;
	char *state;

	/* first plan: everything is new */
	drive(&(struct drv_opts){"plan", ALL_SOURCES, NULL, token_env, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert(has_log(&d, "info", "would provide: token, cert, db, api, host, blob"));
	ck_assert_str_eq(extdrv_summary(&d), "would provide: token, cert, db, api, host, blob");
	ck_assert_int_eq(count(&d, "output"), 0);
	ck_assert_int_eq(count(&d, "state"), 0);
	assert_no_plaintext(&d);
	extdrv_release(&d);

	/* apply, then plan with its state: no change */
	drive(&(struct drv_opts){"apply", ALL_SOURCES, NULL, token_env, NULL}, &d);
	state = strdup(json_object_to_json_string(
		op_get(extdrv_find_last(&d, "state", NULL, NULL), "state")));
	extdrv_release(&d);
	drive(&(struct drv_opts){"plan", ALL_SOURCES, state, token_env, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	ck_assert(!op_get_bool(d.result, "changed", true));
	ck_assert_str_eq(extdrv_summary(&d), "no change: token, cert, db, api, host, blob");
	ck_assert(has_log(&d, "info", "would provide: token, cert, db, api, host, blob"));
	assert_no_plaintext(&d);
	extdrv_release(&d);

	/* a rotated value: changed, named, never shown */
	drive(&(struct drv_opts){"plan", ALL_SOURCES, state, other_env, NULL}, &d);
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert(has_log(&d, "info", "changed: token (value changed)"));
	assert_no_plaintext(&d);
	extdrv_release(&d);

	/* a value removed from the config: changed */
	drive(&(struct drv_opts){"plan",
				 "{\"values\":{\"token\":{\"env\":\"SECRETS_TEST_TOKEN\"}}}", state,
				 token_env, NULL},
	      &d);
	ck_assert(op_get_bool(d.result, "changed", false));
	ck_assert(has_log(&d, "info",
			  "changed: cert (removed), db (removed), api (removed), host (removed), "
			  "blob (removed)"));
	extdrv_release(&d);
	free(state);
}
END_TEST

START_TEST(validate_errors)
{
	struct extdrv d;
	char *want;

	drive(&(struct drv_opts){"validate", ALL_SOURCES, NULL, NULL, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	extdrv_release(&d);

	drive(&(struct drv_opts){"validate", "{\"values\":{\"db\":{\"sopss\":{\"file\":\"x\"}}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "failure");
	ck_assert_str_eq(extdrv_summary(&d),
			 "invalid configuration: values.db: unknown source 'sopss' (expected env, "
			 "file, sops or age)");
	ck_assert(has_log(&d, "error",
			  "values.db: unknown source 'sopss' (expected env, file, sops or age)"));
	ck_assert_str_eq(
		op_get_str(json_object_array_get_idx(op_get(d.result, "errors"), 0), "path"),
		"values.db");
	extdrv_release(&d);

	drive(
		&(struct drv_opts){
			"validate",
			"{\"valuse\":{},\"values\":{\"c\":{\"file\":\"missing.pem\"},"
			"\"k\":{\"sops\":{\"file\":\"secrets.enc.yaml\",\"key\":\"a..b\"}},"
			"\"x\":{\"age\":{\"file\":\"file.age\"}}}}",
			NULL, NULL, NULL},
		&d);
	ck_assert_str_eq(status_of(&d), "failure");
	ck_assert(has_log(&d, "error", "unknown key 'valuse' (did you mean 'values'?)"));
	ck_assert_int_ge(asprintf(&want,
				  "values.c.file: cannot read '%s/missing.pem': No such file or "
				  "directory",
				  fx.dir),
			 0);
	ck_assert(has_log(&d, "error", want));
	ck_assert(has_log(&d, "error",
			  "values.k.sops.key: invalid key path 'a..b' (expected a.b.c or "
			  "[\"a\"][\"b\"] or a[0])"));
	ck_assert(has_log(&d, "error", "values.x.age.identity: is required (or set age_key_file)"));
	ck_assert_str_eq(extdrv_summary(&d), "invalid configuration: unknown key 'valuse' (did you "
					     "mean 'values'?) (and 3 more)");
	free(want);
	extdrv_release(&d);
}
END_TEST

START_TEST(apply_errors)
{
	struct extdrv d;
	char *want;

	/* missing environment variable */
	drive(&(struct drv_opts){"apply", "{\"values\":{\"token\":{\"env\":\"SECRETS_NOPE\"}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "failure");
	ck_assert_str_eq(extdrv_summary(&d),
			 "values.token.env: environment variable 'SECRETS_NOPE' "
			 "is not set (add it to the instance's pass_env)");
	ck_assert_int_eq(count(&d, "output"), 0);
	extdrv_release(&d);

	/* missing file */
	drive(&(struct drv_opts){"apply", "{\"values\":{\"cert\":{\"file\":\"gone.pem\"}}}", NULL,
				 NULL, NULL},
	      &d);
	ck_assert_int_ge(
		asprintf(&want,
			 "values.cert.file: cannot read '%s/gone.pem': No such file or directory",
			 fx.dir),
		0);
	ck_assert_str_eq(extdrv_summary(&d), want);
	free(want);
	extdrv_release(&d);

	/* a key that is not in the sops file */
	drive(&(struct drv_opts){"apply",
				 "{\"age_key_file\":\"key.txt\",\"values\":{\"db\":{\"sops\":{"
				 "\"file\":\"secrets.enc.yaml\",\"key\":\"db.pasword\"}}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "failure");
	ck_assert_int_ge(asprintf(&want,
				  "values.db.sops.key: 'db.pasword' not found in "
				  "'%s/secrets.enc.yaml'",
				  fx.dir),
			 0);
	ck_assert_str_eq(extdrv_summary(&d), want);
	ck_assert_int_eq(count(&d, "output"), 0);
	assert_no_plaintext(&d);
	free(want);
	extdrv_release(&d);

	/* no age key at all: sops fails, its stderr is logged, the hint is given */
	drive(&(struct drv_opts){"apply",
				 "{\"values\":{\"db\":{\"sops\":{\"file\":\"secrets.enc.yaml\","
				 "\"key\":\"db.password\"}}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_str_eq(status_of(&d), "failure");
	ck_assert_int_ge(asprintf(&want,
				  "values.db.sops: sops could not decrypt '%s/secrets.enc.yaml' "
				  "(exit status 128); no age key given: set age_key_file, or "
				  "SOPS_AGE_KEY_FILE or SOPS_AGE_KEY in orchd's environment",
				  fx.dir),
			 0);
	ck_assert_str_eq(extdrv_summary(&d), want);
	ck_assert(has_log(&d, "warning",
			  "sops: Failed to get the data key required to decrypt the SOPS file."));
	assert_no_plaintext(&d);
	free(want);
	extdrv_release(&d);

	/* age with the wrong identity (a fresh key) */
	ck_assert_int_eq(tool(NULL, "age-keygen", "-o", "other.txt", NULL, NULL, NULL, NULL), 0);
	drive(&(struct drv_opts){"apply",
				 "{\"values\":{\"blob\":{\"age\":{\"file\":\"file.age\","
				 "\"identity\":\"other.txt\"}}}}",
				 NULL, NULL, NULL},
	      &d);
	ck_assert_int_ge(asprintf(&want,
				  "values.blob.age: age could not decrypt '%s/file.age' (exit "
				  "status 1)",
				  fx.dir),
			 0);
	ck_assert_str_eq(extdrv_summary(&d), want);
	assert_no_plaintext(&d);
	free(want);
	extdrv_release(&d);
}
END_TEST

/*
 * The real tools never print the plaintext on stderr, so this fault cannot
 * be produced with them: a stand-in `age` (a shell script first on PATH)
 * prints the plaintext on stdout AND, with noise around it, on stderr.
 * The only mock of this file.
 */
START_TEST(stderr_is_masked)
{
	struct extdrv d;
	char *bin, *script;

	ck_assert_int_ge(asprintf(&bin, "%s/fakebin", fx.dir), 0);
	ck_assert_int_eq(mkdir(bin, 0755) == 0 || errno == EEXIST, 1);
	ck_assert_int_ge(asprintf(&script, "%s/age", bin), 0);
	ck_assert_int_eq(write_file(bin, "age",
				    "#!/bin/sh\n"
				    "printf '%s\\n' '" V_AGE "'\n"
				    "printf 'debug: got [%s] and env [%s]\\n' '" V_AGE "' "
				    "\"$SECRETS_TEST_TOKEN\" >&2\n"),
			 0);
	ck_assert_int_eq(chmod(script, 0755), 0);
	drive(&(struct drv_opts){"apply",
				 "{\"values\":{\"token\":{\"env\":\"SECRETS_TEST_TOKEN\"},"
				 "\"blob\":{\"age\":{\"file\":\"file.age\",\"identity\":"
				 "\"key.txt\"}}}}",
				 NULL, token_env, bin},
	      &d);
	ck_assert_str_eq(status_of(&d), "success");
	assert_output(&d, "blob", V_AGE);
	ck_assert(has_log(&d, "warning", "age: debug: got [***] and env [***]"));
	assert_no_plaintext(&d);
	extdrv_release(&d);
	free(script);
	free(bin);
}
END_TEST

START_TEST(destroy_and_describe)
{
	struct extdrv d;
	struct json_object *st;

	drive(&(struct drv_opts){"destroy", ALL_SOURCES, "{\"salt\":\"x\"}", NULL, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	ck_assert(!op_get_bool(d.result, "changed", true));
	st = extdrv_find_last(&d, "state", NULL, NULL);
	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_null(op_get(st, "state"));
	extdrv_release(&d);

	drive(&(struct drv_opts){"describe", "{}", NULL, NULL, NULL}, &d);
	ck_assert_str_eq(status_of(&d), "success");
	ck_assert_str_eq(op_get_str(op_get(d.result, "describe"), "type"), "secrets");
	extdrv_release(&d);
}
END_TEST

/* examples/secrets decrypts with its demo key (keeps the example honest). */
START_TEST(example_pipeline_values)
{
	static const char *const env[] = {"DEMO_TOKEN=demo-token", NULL};
	char *dir = test_src_path("examples/secrets");
	struct extdrv d;

	drive(&(struct drv_opts){"apply",
				 "{\"age_key_file\":\"demo-age-key.txt\",\"values\":{"
				 "\"db_password\":{\"sops\":{\"file\":\"secrets.enc.yaml\","
				 "\"key\":\"db.password\"}},"
				 "\"api_key\":{\"sops\":{\"file\":\"secrets.enc.yaml\","
				 "\"key\":\"[\\\"api\\\"][\\\"key\\\"]\"}},"
				 "\"signing_key\":{\"age\":{\"file\":\"signing-key.age\"}},"
				 "\"banner\":{\"file\":\"banner.txt\"},"
				 "\"token\":{\"env\":\"DEMO_TOKEN\"}}}",
				 NULL, env, NULL, dir},
	      &d);
	ck_assert_str_eq(status_of(&d), "success");
	assert_output(&d, "db_password", "demo-db-password-not-secret");
	assert_output(&d, "api_key", "demo-api-key-0000");
	assert_output(&d, "signing_key", "demo-signing-key-not-secret");
	assert_output(&d, "banner", "Welcome to the demo");
	assert_output(&d, "token", "demo-token");
	extdrv_release(&d);
	free(dir);
}
END_TEST

Suite *secrets_ext_suite(void)
{
	Suite *s = suite_create("secrets_ext");
	TCase *tc = tcase_create("secrets");
	/* needs the real tools (make tools): left out by make check-fast */
	tcase_set_tags(tc, "tools");

	tcase_add_unchecked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, apply_all_sources);
	tcase_add_test(tc, sops_whole_document);
	tcase_add_test(tc, sops_key_from_pass_env);
	tcase_add_test(tc, plan_names_only_and_detects_changes);
	tcase_add_test(tc, validate_errors);
	tcase_add_test(tc, apply_errors);
	tcase_add_test(tc, stderr_is_masked);
	tcase_add_test(tc, destroy_and_describe);
	tcase_add_test(tc, example_pipeline_values);
	suite_add_tcase(s, tc);
	return s;
}
