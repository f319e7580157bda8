/*
 * fuzz_loader: the pipeline file as `orchd validate` loads it:
 * orchd_bootstrap_load() (libyaml events to the models of
 * orchestrator/models/pipeline.c, every key and type checked, references
 * parsed), then the extension registry of orchestrator/core/loader.c and
 * orchd_pipeline_validate() (dependencies, references, cycles, known
 * types), then the diagnostics printed.
 *
 * Input: the pipeline file, from an in-memory buffer (the API takes one).
 * Its imports are served from memory, never from the disk: "lib.yaml" and
 * "templates.yaml" are a fixed file of templates, defaults and an
 * instance; every other path does not exist.  A file that mentions
 * "environments" is loaded with the environment "prod" selected (the
 * composition stage, core/compose.c, runs on every input).
 * No extension is run: LLVMFuzzerInitialize creates a fake extensions
 * directory once (orchd-ext-exec, -terraform, -ansible, -secrets: empty
 * executable files, never started; a manifest for exec) and the registry
 * is discovered from it alone (ORCHD_LOADER_NO_ENV | NO_BUILTIN, the
 * equivalent of ORCHD_EXTENSIONS_PATH_ONLY with --extensions-dir).
 *
 * Checks: no crash, leak or undefined behaviour; load and validate return
 * 0 or -1, and -1 comes with at least one diagnostic (or the truncation
 * flag), every diagnostic having a message; a pipeline that validates has
 * a name and consistent instances (dependency indexes in range, a stack
 * name and a config blob for each), a topological order (core/graph.c:
 * every node once, after its dependencies), and each instance's references
 * resolve leniently (core/refs.c, as `orchd plan` before any apply: mock
 * outputs, else the reference's text) into a config blob that hashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bootstrap.h"
#include "core/graph.h"
#include "core/loader.h"
#include "core/refs.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fake_types[] = {"exec", "terraform", "ansible", "secrets"};

static const char exec_manifest[] =
	"{\"name\":\"exec\",\"version\":\"0.1.0\",\"protocol\":{\"min\":1,\"max\":1},"
	"\"min_orchd_version\":\"0.1.0\",\"description\":\"fake\"}\n";

static struct orchd_registry reg = ORCHD_REGISTRY_INIT;
static const char **types;
static size_t ntypes;
static char ext_dir[4096];

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(close(fd) == 0);
	CHECK(chmod(path, mode) == 0);
}

/* At exit: the fake directory goes, the registry is released. */
static void cleanup(void)
{
	char path[4200];

	free(types);
	orchd_loader_release(&reg);
	for (size_t i = 0; i < ARRAY_SIZE(fake_types); i++) {
		snprintf(path, sizeof(path), "%s/orchd-ext-%s", ext_dir, fake_types[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/orchd-ext-exec.manifest.json", ext_dir);
	unlink(path);
	rmdir(ext_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	const char *dirs[1];
	struct op_buf err = OP_BUF_INIT;
	char path[4200];

	(void)argc;
	(void)argv;
	snprintf(ext_dir, sizeof(ext_dir), "%s/orchd-fuzz-ext.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	CHECK(mkdtemp(ext_dir));
	for (size_t i = 0; i < ARRAY_SIZE(fake_types); i++) {
		snprintf(path, sizeof(path), "%s/orchd-ext-%s", ext_dir, fake_types[i]);
		write_file(path, "#!/bin/sh\nexit 111\n", 0755);
	}
	snprintf(path, sizeof(path), "%s/orchd-ext-exec.manifest.json", ext_dir);
	write_file(path, exec_manifest, 0644);
	dirs[0] = ext_dir;
	CHECK(orchd_loader_discover(&reg, dirs, 1, ORCHD_LOADER_NO_ENV | ORCHD_LOADER_NO_BUILTIN,
				    &err) == 0);
	op_buf_release(&err);
	types = orchd_loader_types(&reg, &ntypes);
	CHECK(ntypes == ARRAY_SIZE(fake_types));
	atexit(cleanup);
	return 0;
}

static const char lib_yaml[] =
	"core:\n"
	"  vars: {tier: base, n: 3}\n"
	"  defaults: {exec: {env: {A: '${{ vars.tier }}'}}}\n"
	"  templates:\n"
	"    svc:\n"
	"      params:\n"
	"        name: {type: string, required: true}\n"
	"        port: {type: number, default: 80}\n"
	"        tags: {type: list, default: [a]}\n"
	"      config:\n"
	"        command: [sh, -c, 'echo ${{ params.name }}:${{ params.port }}']\n"
	"        tags: ${{ params.tags }}\n"
	"    inner:\n"
	"      params: {x: {type: string, default: y}}\n"
	"      template: svc\n"
	"      with: {name: '${{ params.x }}'}\n"
	"exec:\n"
	"  - {name: from-lib, template: inner}\n";

/* orchd_load_opts.read: imports from memory only. */
static int read_import(void *ctx, const char *path, struct op_buf *out)
{
	const char *base = strrchr(path, '/');

	(void)ctx;
	base = base ? base + 1 : path;
	if (strcmp(base, "lib.yaml") && strcmp(base, "templates.yaml")) {
		errno = ENOENT;
		return -1;
	}
	op_buf_init(out, ORCHD_MAX_FILE_SIZE);
	return op_buf_add(out, lib_yaml, sizeof(lib_yaml) - 1);
}

/* Nothing is known of any upstream: mock outputs or the reference's text. */
static const struct orchd_upstream *no_upstream(void *arg, size_t i)
{
	static const struct orchd_upstream none = {NULL, NULL, NULL};

	(void)arg;
	(void)i;
	return &none;
}

static void check_valid(const struct orchd_pipeline *p)
{
	struct orchd_graph g = ORCHD_GRAPH_INIT;
	struct orchd_resolver r = {p, no_upstream, NULL, 1, 1};
	size_t *order, *pos;

	CHECK(p->name && *p->name);
	for (size_t i = 0; i < p->ninst; i++) {
		const struct orchd_instance *in = &p->inst[i];
		struct orchd_resolved res;
		char hex[ORCHD_SHA256_HEXSZ];
		char *stack;
		json_object *cfg;

		for (size_t k = 0; k < in->ndeps; k++)
			CHECK(in->deps[k] < p->ninst);
		stack = orchd_instance_stack(p, in);
		CHECK(stack && *stack);
		free(stack);
		cfg = orchd_instance_config(p, in);
		CHECK(cfg);
		json_object_put(cfg);
		CHECK(orchd_refs_resolve(&r, i, &res) == 0);
		CHECK(res.config);
		orchd_json_hash(res.config, hex);
		orchd_resolved_release(&res);
	}
	orchd_graph_build(&g, p);
	CHECK(g.n == p->ninst);
	order = calloc(g.n + 1, sizeof(*order));
	pos = calloc(g.n + 1, sizeof(*pos));
	CHECK(order && pos);
	CHECK(orchd_graph_order(&g, order) == 0);
	for (size_t k = 0; k < g.n; k++)
		pos[k] = g.n;
	for (size_t k = 0; k < g.n; k++) {
		CHECK(order[k] < g.n && pos[order[k]] == g.n);
		pos[order[k]] = k;
	}
	for (size_t i = 0; i < g.n; i++)
		for (size_t k = 0; k < p->inst[i].ndeps; k++)
			CHECK(pos[p->inst[i].deps[k]] < pos[i]);
	free(order);
	free(pos);
	orchd_graph_release(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct orchd_diags d;
	struct orchd_load_opts o;
	struct orchd_pipeline *p = NULL;
	char *buf = NULL, *out = NULL;
	size_t outlen = 0;
	FILE *fp;
	int ret;

	/* exactly size bytes: the loader must not need a NUL after them */
	buf = malloc(size ? size : 1);
	CHECK(buf);
	if (size)
		memcpy(buf, data, size);
	orchd_diags_init(&d);
	memset(&o, 0, sizeof(o));
	o.read = read_import;
	if (size >= 12 && memmem(buf, size, "environments", 12))
		o.env = "prod";
	ret = orchd_bootstrap_load_buf("fuzz.yaml", buf, size, &o, &p, &d);
	CHECK(ret == 0 || ret == -1);
	if (ret == 0)
		CHECK(p);
	if (p && orchd_pipeline_validate(p, types, ntypes, &d) < 0)
		ret = -1;
	if (ret < 0)
		CHECK(d.n > 0 || d.truncated);
	else
		check_valid(p);
	for (size_t i = 0; i < d.n; i++)
		CHECK(d.v[i].msg && *d.v[i].msg);
	fp = open_memstream(&out, &outlen);
	CHECK(fp);
	orchd_diags_print(&d, fp);
	CHECK(fclose(fp) == 0);
	free(out);
	orchd_diags_release(&d);
	orchd_pipeline_free(p);
	free(buf);
	return 0;
}
