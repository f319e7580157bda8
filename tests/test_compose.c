/*
 * Tests of core/compose (imports, templates, environments, variables,
 * --explain) and core/affected (orchd affected on a real git repository,
 * built commit by commit): every merge rule, every error with its exact
 * message, and runs of the real exec extension under two environments.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bootstrap.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

#define END ((const char *)NULL)

static char *tmp;

static void setup(void)
{
	tmp = test_tmpdir();
	unsetenv("ORCHD_ENV");
	unsetenv("ORCHD_EXTENSIONS_PATH_ONLY");
	unsetenv("ORCHD_EXTENSIONS_PATH");
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
}

/* Write tmp/name (parent directories made). */
static void put(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmp, name), *slash;
	FILE *fp;

	for (slash = strchr(path + strlen(tmp) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	free(path);
}

/* Load tmp/name under env (may be NULL), validated; the printed errors,
 * with tmp/ cut from file names, in *errs (may be NULL). */
static struct orchd_pipeline *load_env(const char *name, const char *env, char **errs)
{
	struct orchd_load_opts o;
	struct orchd_diags d;
	struct orchd_pipeline *p = NULL;
	char *path = xasprintf("%s/%s", tmp, name), *buf = NULL, *cut;
	size_t len = 0, tl = strlen(tmp) + 1;
	FILE *fp;
	int ret;

	memset(&o, 0, sizeof(o));
	o.env = env;
	orchd_diags_init(&d);
	ret = orchd_bootstrap_load_opts(path, &o, &p, &d);
	if (!ret && p)
		ret = orchd_pipeline_validate(p, NULL, 0, &d);
	fp = open_memstream(&buf, &len);
	orchd_diags_print(&d, fp);
	fclose(fp);
	orchd_diags_release(&d);
	/* "TMP/x.yaml:..." -> "x.yaml:..." */
	while ((cut = strstr(buf, tmp)))
		memmove(cut, cut + tl, strlen(cut + tl) + 1);
	if (errs)
		*errs = buf;
	else
		free(buf);
	free(path);
	if (ret < 0) {
		orchd_pipeline_free(p);
		return NULL;
	}
	return p;
}

static struct orchd_pipeline *load(const char *name, char **errs)
{
	return load_env(name, NULL, errs);
}

/* The error text of a file that must not load. */
static char *fails(const char *name, const char *env)
{
	char *errs;
	struct orchd_pipeline *p = load_env(name, env, &errs);

	if (p)
		ck_abort_msg("%s loaded, expected errors", name);
	return errs;
}

#define assert_has(hay, needle)                                                    \
	do {                                                                       \
		if (!strstr((hay), (needle)))                                      \
			ck_abort_msg("expected:\n  %s\nin:\n%s", (needle), (hay)); \
	} while (0)

static const struct orchd_instance *inst(const struct orchd_pipeline *p, const char *id)
{
	size_t i = orchd_pipeline_find(p, id, NULL);

	ck_assert_msg(i != (size_t)-1, "no instance %s", id);
	return &p->inst[i];
}

/* An instance's config as the extension sees it, as compact JSON text
 * (malloc'ed). */
static char *cfg(const struct orchd_pipeline *p, const char *id)
{
	json_object *o = orchd_instance_config(p, inst(p, id));
	char *s = xstrdup(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	return s;
}

#define assert_cfg(p, id, want)                 \
	do {                                    \
		char *got_ = cfg((p), (id));    \
		ck_assert_str_eq(got_, (want)); \
		free(got_);                     \
	} while (0)

/* ---- imports: the merge rules ---------------------------------------------------- */

START_TEST(test_merge_rules)
{
	struct orchd_pipeline *p;
	char *errs;

	put("a.yaml", "core:\n"
		      "  parallelism: 2\n"
		      "  env: {A: from-a, B: from-a}\n"
		      "  defaults:\n"
		      "    exec: {list: [a1, a2], map: {x: a, y: a}, only_a: 1}\n"
		      "exec:\n"
		      "  - {name: one, v: a}\n");
	put("b.yaml", "core:\n"
		      "  env: {B: from-b, C: from-b}\n"
		      "  defaults:\n"
		      "    exec: {list: [b1], map: {y: b}}\n"
		      "exec:\n"
		      "  - {name: two}\n"
		      "other:\n"
		      "  - {name: three}\n");
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    imports: [a.yaml, b.yaml]\n"
		      "    env: {C: from-p}\n"
		      "    defaults:\n"
		      "      exec: {map: {z: p}}\n"
		      "  exec:\n"
		      "    - {name: four, depends_on: [one, other.three]}\n");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	/* mappings merge key by key; the later import wins; the importing file
	 * wins over its imports */
	ck_assert_str_eq(json_object_get_string(json_object_object_get(p->core.env, "A")),
			 "from-a");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(p->core.env, "B")),
			 "from-b");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(p->core.env, "C")),
			 "from-p");
	ck_assert_int_eq(p->core.parallelism, 2);
	/* lists replace; nested mappings merge */
	assert_cfg(
		p, "exec.four",
		"{\"list\":[\"b1\"],\"map\":{\"x\":\"a\",\"y\":\"b\",\"z\":\"p\"},\"only_a\":1}");
	/* extension sections concatenate, imports first, in order */
	ck_assert_uint_eq(p->ninst, 4);
	ck_assert_str_eq(p->inst[0].id, "exec.one");
	ck_assert_str_eq(p->inst[1].id, "exec.two");
	ck_assert_str_eq(p->inst[2].id, "exec.four");
	ck_assert_str_eq(p->inst[3].id, "other.three");
	/* positions know their file */
	ck_assert_str_eq(orchd_pos_file(p, inst(p, "exec.one")->pos), p->files[1].path);
	ck_assert_ptr_nonnull(strstr(p->files[1].path, "a.yaml"));
	ck_assert_str_eq(orchd_pos_file(p, inst(p, "exec.four")->pos), p->file);
	ck_assert_uint_eq(inst(p, "exec.four")->ndeps, 2);
	orchd_pipeline_free(p);
	free(errs);
}
END_TEST

START_TEST(test_import_paths_and_diamond)
{
	struct orchd_pipeline *p;
	char *errs;

	/* relative to the importing file; a file met twice is merged once */
	put("lib/base.yaml", "exec:\n  - {name: base}\n");
	put("lib/x.yaml", "core: {imports: [base.yaml]}\nexec:\n  - {name: x}\n");
	put("lib/sub/y.yaml",
	    "core: {imports: [../base.yaml, ./../x.yaml]}\nexec:\n  - {name: y}\n");
	put("p.yaml", "p:\n  core: {imports: [lib/x.yaml, lib/sub/y.yaml, lib/empty.yaml]}\n");
	put("lib/empty.yaml", "");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	ck_assert_uint_eq(p->ninst, 3);
	ck_assert_str_eq(p->inst[0].id, "exec.base");
	ck_assert_str_eq(p->inst[1].id, "exec.x");
	ck_assert_str_eq(p->inst[2].id, "exec.y");
	orchd_pipeline_free(p);
	free(errs);
}
END_TEST

START_TEST(test_import_errors)
{
	char *e;

	put("self.yaml", "p:\n  core: {imports: [self.yaml]}\n");
	e = fails("self.yaml", NULL);
	assert_has(e, "self.yaml:2:20: error: import cycle: self.yaml:2:20 imports self.yaml\n");
	free(e);

	put("a.yaml", "core:\n  imports: [b.yaml]\n");
	put("b.yaml", "core:\n  imports: [c.yaml]\n");
	put("c.yaml", "core:\n  imports: [./a.yaml]\n");
	put("p.yaml", "p:\n  core:\n    imports: [a.yaml]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "c.yaml:2:13: error: import cycle: p.yaml:3:15 imports a.yaml, "
		      "a.yaml:2:13 imports b.yaml, b.yaml:2:13 imports c.yaml, c.yaml:2:13 "
		      "imports ./a.yaml\n");
	free(e);

	put("p.yaml", "p:\n  core:\n    imports: [missing.yaml, {git: x}, 3, [a]]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:3:15: error: core.imports: cannot read 'missing.yaml': No such "
		      "file or directory\n");
	assert_has(e, "p.yaml:3:29: error: core.imports: a git import needs 'ref' (a non-empty "
		      "string)\n");
	assert_has(e, "p.yaml:3:39: error: core.imports: expected a path or {git, ref, path}, "
		      "got an integer\n");
	assert_has(e, "p.yaml:3:42: error: core.imports: expected a path or {git, ref, path}, "
		      "got a sequence\n");
	free(e);

	put("p.yaml", "p:\n  core:\n    imports: a.yaml\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:3:14: error: core.imports: expected a list of files, got a string\n");
	free(e);

	put("list.yaml", "- a\n- b\n");
	put("bad.yaml", "core: {stack: [x}\n");
	put("p.yaml", "p:\n  core:\n    imports: [list.yaml, bad.yaml]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "list.yaml:1:1: error: an imported file holds core and extension sections "
		      "(a mapping), got a sequence\n");
	assert_has(e, "bad.yaml:1:");
	free(e);

	/* a directory */
	put("d/x", "");
	put("p.yaml", "p:\n  core:\n    imports: [d]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:3:15: error: core.imports: cannot read 'd': not a regular file\n");
	free(e);
	/* a FIFO nobody writes to, a device: refused, not waited on */
	{
		char *fifo = xasprintf("%s/fifo", tmp);

		ck_assert_int_eq(mkfifo(fifo, 0600), 0);
		free(fifo);
	}
	put("p.yaml", "p:\n  core:\n    imports: [fifo, /dev/zero]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:3:15: error: core.imports: cannot read 'fifo': not a regular file\n");
	assert_has(e, "p.yaml:3:21: error: core.imports: cannot read '/dev/zero': not a regular "
		      "file\n");
	free(e);
}
END_TEST

START_TEST(test_duplicate_across_files)
{
	char *e;

	put("inner.yaml", "exec:\n  - name: web\n");
	put("mid.yaml", "core: {imports: [inner.yaml]}\n");
	put("p.yaml", "p:\n  core:\n    imports: [mid.yaml]\n  exec:\n    - name: web\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:5:13: error: p.exec[1].name: duplicate instance 'exec.web': defined "
		      "at inner.yaml:2:11 (imported at mid.yaml:1:18, imported at p.yaml:3:15) and "
		      "at p.yaml:5:13\n");
	free(e);
	/* within one file the message stays as it was */
	put("p.yaml", "p:\n  exec:\n    - name: web\n    - name: web\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:4:13: error: p.exec[1].name: duplicate instance name 'web' (first "
		      "defined at 3:13)\n");
	free(e);
	/* an error in an imported file names that file */
	put("inner.yaml", "exec:\n  - name: web\n    execution: {max_attempts: zero}\n");
	put("p.yaml", "p:\n  core:\n    imports: [mid.yaml]\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "inner.yaml:3:31: error: p.exec[0].execution.max_attempts: expected an "
		      "integer, got a string\n");
	free(e);
}
END_TEST

/* ---- templates ------------------------------------------------------------------- */

START_TEST(test_templates)
{
	struct orchd_pipeline *p;
	char *errs;

	put("p.yaml",
	    "p:\n"
	    "  core:\n"
	    "    templates:\n"
	    "      base:\n"
	    "        params:\n"
	    "          tier: {type: string, default: gold}\n"
	    "          tags: {type: list, default: []}\n"
	    "        config: {tier: '${{ params.tier }}', tags: '${{ params.tags }}', keep: base}\n"
	    "      svc:\n"
	    "        params:\n"
	    "          name: {type: string, required: true}\n"
	    "          port: {type: number, default: 80}\n"
	    "          opts: {type: map, default: {a: 1}}\n"
	    "          on: {type: bool, default: true}\n"
	    "          up: {type: string}\n"
	    "        template: base\n"
	    "        with: {tags: ['${{ params.name }}', x]}\n"
	    "        config:\n"
	    "          url: 'http://${{ params.name }}:${{ params.port }}/'\n"
	    "          port: ${{ params.port }}\n"
	    "          opts: ${{ params.opts }}\n"
	    "          on: '${{ params.on }}'\n"
	    "          lit: '$${{ params.name }}'\n"
	    "          keep: svc\n"
	    "  exec:\n"
	    "    - {name: db}\n"
	    "    - name: web\n"
	    "      template: svc\n"
	    "      with: {name: web, port: 8080, opts: {b: 2}, on: false}\n"
	    "      keep: own\n"
	    "    - name: api\n"
	    "      template: svc\n"
	    "      with: {name: api, port: '${{ exec.db.outputs.port }}'}\n");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	/* inner template first, then the template, then the instance's keys;
	 * whole-string params keep their type; escapes stay literal */
	assert_cfg(p, "exec.web",
		   "{\"tier\":\"gold\",\"tags\":[\"web\",\"x\"],\"keep\":\"own\","
		   "\"url\":\"http://web:8080/\",\"port\":8080,\"opts\":{\"b\":2},\"on\":false,"
		   "\"lit\":\"${{ params.name }}\"}");
	/* a reference passed as a parameter is a reference: an edge */
	ck_assert_uint_eq(inst(p, "exec.api")->ndeps, 1);
	ck_assert_str_eq(p->inst[inst(p, "exec.api")->deps[0]].id, "exec.db");
	/* in port, and in the text of url */
	ck_assert_uint_eq(inst(p, "exec.api")->nrefs, 2);
	orchd_pipeline_free(p);
	free(errs);
}
END_TEST

START_TEST(test_template_errors)
{
	char *e;

	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    templates:\n"
		      "      svc:\n"
		      "        params:\n"
		      "          name: {type: string, required: true}\n"
		      "          port: {type: number, default: 80}\n"
		      "          opt: {type: string}\n"
		      "          l: {type: list, default: [1]}\n"
		      "        config: {a: 'x${{ params.opt }}', b: 'x${{ params.l }}'}\n"
		      "  exec:\n"
		      "    - {name: a, template: svx}\n"
		      "    - {name: b, template: svc, with: {name: b, prot: 1}}\n"
		      "    - {name: c, template: svc, with: {name: c, port: '80'}}\n"
		      "    - {name: d, template: svc}\n"
		      "    - {name: e, with: {name: e}}\n"
		      "    - {name: f, template: svc, with: {name: f}}\n"
		      "    - {name: g, x: '${{ params.name }}'}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:12:27: error: exec.a: template: unknown template 'svx' (did you mean "
		      "'svc'?)\n");
	assert_has(e, "p.yaml:13:48: error: exec.b: with.prot: template 'svc' has no parameter "
		      "'prot' (did you mean 'port'?)\n");
	assert_has(e, "p.yaml:14:54: error: exec.c: with.port: template 'svc' expects a number, "
		      "got a string\n");
	assert_has(e, "p.yaml:15:27: error: exec.d: template 'svc': missing required parameter "
		      "'name'\n");
	assert_has(e, "p.yaml:16:23: error: exec.e: with: without 'template'\n");
	assert_has(e, "p.yaml:10:21: error: exec.f: '${{ params.opt }}': template 'svc' has no "
		      "parameter 'opt' with a value\n");
	assert_has(e, "p.yaml:10:46: error: exec.f: '${{ params.l }}' is a sequence: only a string "
		      "that is exactly '${{ params.l }}' can take it\n");
	assert_has(e, "p.yaml:18:20: error: p.exec[6].x: '${{ params.name }}': parameters exist "
		      "only in the config of a template (core.templates)\n");
	free(e);

	/* definitions */
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    templates:\n"
		      "      a: {template: b}\n"
		      "      b: {template: a}\n"
		      "      c: {params: {x: {type: strng}}, confg: {}}\n"
		      "      d: {params: {x: {type: number, default: ten}}}\n"
		      "      t1: {template: t2}\n"
		      "      t2: {template: t3}\n"
		      "      t3: {template: t4}\n"
		      "      t4: {template: t5}\n"
		      "      t5: {template: t6}\n"
		      "      t6: {template: t7}\n"
		      "      t7: {template: t8}\n"
		      "      t8: {template: t9}\n"
		      "      t9: {}\n"
		      "  exec:\n"
		      "    - {name: a, template: a}\n"
		      "    - {name: t, template: t1}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:5:21: error: exec.a: template cycle: a -> b -> a\n");
	assert_has(e, "p.yaml:6:30: error: core.templates.c.params.x.type: expected one of string, "
		      "number, bool, list, map, got 'strng'\n");
	assert_has(e, "p.yaml:6:39: error: core.templates.c: unknown key 'confg' (did you mean "
		      "'config'?)\n");
	assert_has(e, "p.yaml:7:47: error: core.templates.d.params.x.default: expected a number, "
		      "got a string\n");
	assert_has(e, "error: exec.t: templates nested too deep (limit 8): t1 ...\n");
	free(e);
}
END_TEST

START_TEST(test_template_expansion_bound)
{
	struct op_buf sb = OP_BUF_INIT;
	char *e;

	/* a template of 4000 nodes used 1100 times: more than the bound */
	op_buf_addstr(&sb, "p:\n  core:\n    templates:\n      big:\n        config:\n");
	op_buf_addstr(&sb, "          k: [");
	for (int i = 0; i < 4000; i++)
		op_buf_addf(&sb, "%s%d", i ? "," : "", i);
	op_buf_addstr(&sb, "]\n  exec:\n");
	for (int i = 0; i < 1100; i++)
		op_buf_addf(&sb, "    - {name: i%d, template: big}\n", i);
	put("p.yaml", orchd_buf_str(&sb));
	op_buf_release(&sb);
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:1007:30: error: exec.i999: templates and variables expand to too "
		      "much (limit 4000000 nodes, 64 MiB of text in the pipeline)\n");
	free(e);
}
END_TEST

/* ---- environments and variables -------------------------------------------------- */

START_TEST(test_environments)
{
	struct orchd_pipeline *p;
	char *e, *errs, *st;

	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    stack: app\n"
		      "    vars: {tier: base, n: 1, region: eu}\n"
		      "    env_allow: [ORCHD_TEST_REGION]\n"
		      "    env: {TIER: '${{ vars.tier }}'}\n"
		      "    environments:\n"
		      "      dev: {vars: {tier: dev}}\n"
		      "      prod:\n"
		      "        vars: {tier: prod, n: [1, 2]}\n"
		      "        overrides:\n"
		      "          exec.web: {replicas: 3, opts: {b: 2}}\n"
		      "  exec:\n"
		      "    - name: web\n"
		      "      replicas: 1\n"
		      "      opts: {a: 1}\n"
		      "      n: '${{ vars.n }}'\n"
		      "      s: 'n=${{ vars.tier }} r=${{ env.ORCHD_TEST_REGION }}'\n");
	setenv("ORCHD_TEST_REGION", "x-${{ exec.web.outputs.a }}", 1);
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	free(errs);
	ck_assert_ptr_null(p->env);
	st = orchd_instance_stack(p, inst(p, "exec.web"));
	ck_assert_str_eq(st, "app-exec-web");
	free(st);
	/* env values are literal text, never references */
	assert_cfg(p, "exec.web",
		   "{\"replicas\":1,\"opts\":{\"a\":1},\"n\":1,\"s\":\"n=base r=x-${{ "
		   "exec.web.outputs.a }}\"}");
	ck_assert_uint_eq(inst(p, "exec.web")->nrefs, 0);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(p->core.env, "TIER")),
			 "base");
	orchd_pipeline_free(p);

	p = load_env("p.yaml", "prod", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	free(errs);
	ck_assert_str_eq(p->env, "prod");
	st = orchd_instance_stack(p, inst(p, "exec.web"));
	ck_assert_str_eq(st, "app.prod-exec-web");
	free(st);
	assert_cfg(p, "exec.web",
		   "{\"replicas\":3,\"opts\":{\"a\":1,\"b\":2},\"n\":[1,2],\"s\":\"n=prod r=x-${{ "
		   "exec.web.outputs.a }}\"}");
	orchd_pipeline_free(p);

	e = fails("p.yaml", "qa");
	ck_assert_str_eq(e, "p.yaml: error: unknown environment 'qa' (known: dev, prod; "
			    "core.environments at p.yaml:8:7)\n");
	free(e);

	unsetenv("ORCHD_TEST_REGION");
	e = fails("p.yaml", "dev");
	assert_has(e, "p.yaml:18:10: error: exec.web: '${{ env.ORCHD_TEST_REGION }}': the "
		      "environment variable ORCHD_TEST_REGION is not set\n");
	free(e);
}
END_TEST

START_TEST(test_environment_errors)
{
	char *e;

	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    vars: {tier: base}\n"
		      "    environments:\n"
		      "      prod:\n"
		      "        overrides: {exec.wbe: {a: 1}, exec.db: 3}\n"
		      "  exec:\n"
		      "    - {name: web, a: '${{ vars.teir }}', b: '${{ env.HOME }}'}\n"
		      "    - {name: db}\n");
	e = fails("p.yaml", "prod");
	assert_has(e, "p.yaml:8:22: error: exec.web: '${{ vars.teir }}': unknown variable 'teir' "
		      "(did you mean 'tier'?) (defined: tier)\n");
	assert_has(e,
		   "p.yaml:8:45: error: exec.web: '${{ env.HOME }}': 'HOME' is not listed in "
		   "core.env_allow (a pipeline reads only the variables of orchd's environment it "
		   "lists)\n");
	assert_has(e, "p.yaml:6:21: error: core.environments.prod.overrides: no instance "
		      "'exec.wbe' (did you mean 'exec.web'?)\n");
	assert_has(e, "p.yaml:6:48: error: exec.db: core.environments.prod.overrides.exec.db: "
		      "expected a mapping, got an integer\n");
	free(e);

	put("p.yaml", "p:\n  core:\n    environments: {dev: {}}\n  exec:\n    - {name: a, x: "
		      "'${{ vars.tier }}'}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:5:20: error: exec.a: '${{ vars.tier }}': unknown variable 'tier' (no "
		      "environment is selected: use --env with one of dev)\n");
	free(e);
	e = fails("p.yaml", "prod");
	ck_assert_str_eq(e, "p.yaml: error: unknown environment 'prod' (known: dev; "
			    "core.environments at p.yaml:3:19)\n");
	free(e);
	put("p.yaml", "p:\n  exec:\n    - {name: a}\n");
	e = fails("p.yaml", "prod");
	ck_assert_str_eq(e, "p.yaml: error: unknown environment 'prod': the pipeline defines no "
			    "environments (core.environments)\n");
	free(e);
	put("p.yaml", "p:\n  core:\n    environments: {'a.b': {}, c: [], d: {var: {}}}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:3:20: error: core.environments: invalid environment name 'a.b'");
	assert_has(e, "p.yaml:3:34: error: core.environments.c: expected a mapping, got a "
		      "sequence\n");
	assert_has(e, "p.yaml:3:42: error: core.environments.d: unknown key 'var' (did you mean "
		      "'vars'?)\n");
	free(e);
}
END_TEST

/* What a hostile reviewer found (tests written before the fixes). */
START_TEST(test_hostile_findings)
{
	struct orchd_pipeline *p;
	struct op_buf sb = OP_BUF_INIT;
	char *e, *errs;

	/* a whole-string ${{ env.X }} is literal text, never a reference */
	setenv("ORCHD_TEST_VALUE", "${{ exec.up.outputs.x }}", 1);
	put("p.yaml",
	    "p:\n"
	    "  core: {env_allow: [ORCHD_TEST_VALUE], env: {E: '${{ env.ORCHD_TEST_VALUE }}'}}\n"
	    "  exec:\n"
	    "    - {name: up}\n"
	    "    - {name: b, v: '${{ env.ORCHD_TEST_VALUE }}', e: '$${{ x }}'}\n");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	free(errs);
	assert_cfg(p, "exec.b", "{\"v\":\"${{ exec.up.outputs.x }}\",\"e\":\"${{ x }}\"}");
	ck_assert_uint_eq(inst(p, "exec.b")->ndeps, 0);
	ck_assert_uint_eq(inst(p, "exec.b")->nrefs, 0);
	/* and core.env resolves the escape too */
	ck_assert_str_eq(json_object_get_string(json_object_object_get(p->core.env, "E")),
			 "${{ exec.up.outputs.x }}");
	orchd_pipeline_free(p);
	unsetenv("ORCHD_TEST_VALUE");

	/* variables count against the expansion bound */
	op_buf_addstr(&sb, "p:\n  core:\n    vars:\n      big: [");
	for (int i = 0; i < 100000; i++)
		op_buf_addf(&sb, "%s%d", i ? "," : "", i);
	op_buf_addstr(&sb, "]\n  exec:\n    - name: a\n");
	for (int i = 0; i < 60; i++)
		op_buf_addf(&sb, "      k%d: '${{ vars.big }}'\n", i);
	put("p.yaml", orchd_buf_str(&sb));
	op_buf_release(&sb);
	e = fails("p.yaml", NULL);
	assert_has(e, "error: exec.a: templates and variables expand to too much (limit 4000000 "
		      "nodes, 64 MiB of text in the pipeline)\n");
	free(e);

	/* and against the nesting bound */
	op_buf_addstr(&sb, "p:\n  core:\n    vars:\n      v: ");
	for (int i = 0; i < 40; i++)
		op_buf_addch(&sb, '[');
	for (int i = 0; i < 40; i++)
		op_buf_addch(&sb, ']');
	op_buf_addstr(&sb, "\n  exec:\n    - name: a\n      deep: ");
	for (int i = 0; i < 30; i++)
		op_buf_addch(&sb, '[');
	op_buf_addstr(&sb, "'${{ vars.v }}'");
	for (int i = 0; i < 30; i++)
		op_buf_addch(&sb, ']');
	op_buf_addch(&sb, '\n');
	put("p.yaml", orchd_buf_str(&sb));
	op_buf_release(&sb);
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:6:7: error: exec.a: nesting too deep once templates and variables "
		      "are expanded (limit 64 levels)\n");
	free(e);

	/* an extension section of an import that is not a list */
	put("good.yaml", "exec:\n  - {name: ok1}\n");
	put("bad.yaml", "exec: oops\n");
	put("p.yaml", "p:\n  core: {imports: [good.yaml, bad.yaml]}\n  exec:\n    - {name: m}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "bad.yaml:1:7: error: exec: an extension section is a list of instances, got "
		      "a string\n");
	free(e);

	/* template and with are not config keys of a template, nor overridable */
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    templates:\n"
		      "      t: {config: {template: u, with: {}}}\n"
		      "    environments: {e: {overrides: {exec.b: {template: t}}}}\n"
		      "  exec:\n"
		      "    - {name: b}\n");
	e = fails("p.yaml", "e");
	assert_has(e, "p.yaml:4:30: error: core.templates.t.config: 'template' is not a config key "
		      "(a template uses another with its own 'template' and 'with')\n");
	assert_has(e, "p.yaml:4:39: error: core.templates.t.config: 'with' is not a config key");
	assert_has(e,
		   "p.yaml:5:55: error: exec.b: core.environments.e.overrides.exec.b: an "
		   "override cannot change 'template' or 'with' (override the keys they give)\n");
	free(e);

	/* parameters: names ${{ params.X }} can say, finite numbers */
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    templates:\n"
		      "      t: {params: {'bad name': {type: string}, n: {type: number}}}\n"
		      "  exec:\n"
		      "    - {name: a, template: t, with: {n: .nan}}\n");
	e = fails("p.yaml", NULL);
	assert_has(e,
		   "p.yaml:4:20: error: core.templates.t.params: invalid parameter name 'bad "
		   "name' (letters, digits, '_' and '-': ${{ params.NAME }} must be able to name "
		   "it)\n");
	free(e);
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    templates:\n"
		      "      t: {params: {n: {type: number}}}\n"
		      "  exec:\n"
		      "    - {name: a, template: t, with: {n: .nan}}\n"
		      "    - {name: b, template: t, with: {n: 1e400}}\n");
	e = fails("p.yaml", NULL);
	assert_has(e, "p.yaml:6:40: error: exec.a: with.n: template 't' expects a number, got an "
		      "infinite or NaN number\n");
	assert_has(e, "p.yaml:7:40: error: exec.b: with.n: template 't' expects a number, got an "
		      "infinite or NaN number\n");
	free(e);

	/* a misspelt compose key is suggested; a failed instance's override
	 * is not "unknown" */
	put("p.yaml", "p:\n"
		      "  core:\n"
		      "    tempaltes: {}\n"
		      "    environments: {e: {overrides: {exec.a: {x: 1}}}}\n"
		      "  exec:\n"
		      "    - {name: a, template: nosuch}\n");
	e = fails("p.yaml", "e");
	assert_has(e, "p.yaml:3:5: error: p.core: unknown key 'tempaltes' (did you mean "
		      "'templates'?)\n");
	ck_assert_msg(!strstr(e, "no instance"), "%s", e);
	free(e);
}
END_TEST

/* The file system, not the text, says what "link/../x.yaml" and a hard
 * link are. */
START_TEST(test_import_links)
{
	struct orchd_pipeline *p;
	char *a, *b, *errs;

	put("real/inner/keep", "");
	put("real/x.yaml", "exec:\n  - {name: from-real}\n");
	put("x.yaml", "exec:\n  - {name: from-top}\n");
	a = xasprintf("%s/real/inner", tmp);
	b = xasprintf("%s/link", tmp);
	ck_assert_int_eq(symlink(a, b), 0);
	free(a);
	free(b);
	put("p.yaml", "p:\n  core: {imports: [link/../x.yaml]}\n");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	free(errs);
	ck_assert_uint_eq(p->ninst, 1);
	ck_assert_str_eq(p->inst[0].id, "exec.from-real");
	orchd_pipeline_free(p);
	/* a hard link is the same file: merged once */
	a = xasprintf("%s/x.yaml", tmp);
	b = xasprintf("%s/hard.yaml", tmp);
	ck_assert_int_eq(link(a, b), 0);
	free(a);
	free(b);
	put("p.yaml", "p:\n  core: {imports: [x.yaml, hard.yaml]}\n");
	p = load("p.yaml", &errs);
	ck_assert_msg(p != NULL, "%s", errs);
	free(errs);
	ck_assert_uint_eq(p->ninst, 1);
	orchd_pipeline_free(p);
}
END_TEST

/* ---- the command line: the issue's example, --explain ----------------------------- */

static int orchd(char **out, char **err, ...)
{
	char *argv[24];
	const char *a;
	va_list ap;
	int n = 0, code;

	argv[n++] = test_build_path("bin/orchd");
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && n < 23)
		argv[n++] = xstrdup(a);
	va_end(ap);
	argv[n] = NULL;
	code = test_run(argv, out, err);
	for (int i = 0; i < n; i++)
		free(argv[i]);
	return code;
}

static const char common_yaml[] =
	"# common.yaml\n"
	"core:\n"
	"  templates:\n"
	"    svc:\n"
	"      params:\n"
	"        name: {type: string, required: true}\n"
	"        port: {type: number, default: 80}\n"
	"      config:\n"
	"        command: [sh, -c, 'echo \"url=http://${{ params.name }}:${{ params.port }}/${{ "
	"vars.tier }}\" >> \"$ORCHD_OUTPUT\"']\n";

static const char pipeline_yaml[] = "app:\n"
				    "  core:\n"
				    "    stack: app\n"
				    "    imports: [common.yaml]\n"
				    "    environments:\n"
				    "      dev: {vars: {tier: dev}}\n"
				    "      prod: {vars: {tier: prod}}\n"
				    "  exec:\n"
				    "    - name: web\n"
				    "      template: svc\n"
				    "      with: {name: web, port: 8080}\n"
				    "    - name: api\n"
				    "      template: svc\n"
				    "      with: {name: api}\n";

START_TEST(test_issue_example)
{
	char *out, *err, *file;

	put("common.yaml", common_yaml);
	put("pipeline.yaml", pipeline_yaml);
	file = xasprintf("%s/pipeline.yaml", tmp);
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "--env", "prod", "-q", END), 0);
	free(err);
	setenv("ORCHD_ENV", "dev", 1);
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "-q", END), 0);
	free(err);
	unsetenv("ORCHD_ENV");
	ck_assert_int_eq(orchd(&out, &err, "outputs", file, "--env", "prod", END), 0);
	ck_assert_str_eq(out, "exec.web.url = http://web:8080/prod\n"
			      "exec.api.url = http://api:80/prod\n");
	free(out);
	free(err);
	/* dev kept its own stacks */
	ck_assert_int_eq(orchd(&out, &err, "--env", "dev", "outputs", file, END), 0);
	ck_assert_str_eq(out, "exec.web.url = http://web:8080/dev\n"
			      "exec.api.url = http://api:80/dev\n");
	free(out);
	free(err);
	/* no environment: no stacks of its own yet */
	ck_assert_int_eq(orchd(&out, &err, "status", file, "--env", "prod", END), 0);
	ck_assert_ptr_nonnull(strstr(out, "exec.web"));
	free(out);
	free(err);

	/* --explain names common.yaml as the source of command */
	ck_assert_int_eq(
		orchd(&out, &err, "validate", file, "--env", "prod", "--explain", "exec.web", END),
		0);
	assert_has(out, "# exec.web (environment prod), defined at ");
	assert_has(out, "pipeline.yaml:9:7\n");
	assert_has(out, "command:                                                # ");
	assert_has(out, "common.yaml:9:9\n  - \"sh\"");
	assert_has(out,
		   "  - \"echo \\\"url=http://web:8080/prod\\\" >> \\\"$ORCHD_OUTPUT\\\"\" # ");
	assert_has(out, "common.yaml:9:27\n");
	assert_has(out, "name: \"web\"                                             # ");
	assert_has(out, "pipeline.yaml:9:13\n");
	free(out);
	free(err);
	ck_assert_int_eq(
		orchd(&out, &err, "validate", file, "--env", "prod", "--explain", "exec.wbe", END),
		2);
	assert_has(err, "error: --explain: no instance 'exec.wbe' (did you mean 'exec.web'?)");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "graph", file, "--env", END), 2);
	assert_has(err, "error: option '--env' needs a value\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "graph", file, "--env", "qa", END), 2);
	assert_has(err, "pipeline.yaml: error: unknown environment 'qa' (known: dev, prod; ");
	free(out);
	free(err);
	free(file);
}
END_TEST

/* examples/multi-env under both environments; its explanation */
START_TEST(test_multi_env_example)
{
	char *out, *err, *file = test_src_path("examples/multi-env/pipeline.yaml");

	ck_assert_int_eq(
		orchd(NULL, &err, "run", file, "--env", "dev", "--state-dir", tmp, "-q", END), 0);
	free(err);
	ck_assert_int_eq(
		orchd(NULL, &err, "run", file, "--env", "prod", "--state-dir", tmp, "-q", END), 0);
	free(err);
	ck_assert_int_eq(
		orchd(&out, &err, "outputs", file, "--env", "prod", "--state-dir", tmp, END), 0);
	ck_assert_str_eq(out, "exec.db.dsn = postgres://db.shop.test/shop\n"
			      "exec.catalog.url = https://catalog.shop.test:8080\n"
			      "exec.catalog.replicas = 1\n"
			      "exec.cart.url = https://cart.shop.test:8081\n"
			      "exec.cart.replicas = 1\n"
			      "exec.checkout.url = https://checkout.shop.test:8082\n"
			      "exec.checkout.replicas = 3\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "outputs", file, "--env", "dev", "--state-dir", tmp,
			       "exec.checkout", END),
			 0);
	ck_assert_str_eq(out, "exec.checkout.url = https://checkout.dev.shop.test:8082\n"
			      "exec.checkout.replicas = 1\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "validate", file, "--env", "prod", "--explain",
			       "exec.checkout", END),
			 0);
	assert_has(out, "pipeline.yaml:28:7\n");
	assert_has(out, "command:                                                # ");
	assert_has(out, "templates.yaml:14:9\n");
	assert_has(out, "  timeout: \"1m\"                                         # ");
	assert_has(out, "templates.yaml:22:20\n  max_attempts: 3");
	assert_has(out, "pipeline.yaml:18:39\n");
	free(out);
	free(err);
	free(file);
}
END_TEST

/* An extension's error about a key the template wrote is located in the
 * template's file. */
START_TEST(test_error_located_in_template)
{
	char *err, *file = xasprintf("%s/p.yaml", tmp);

	put("t.yaml", "core:\n"
		      "  templates:\n"
		      "    t:\n"
		      "      config:\n"
		      "        command: [sh, -c, 'true']\n"
		      "        bogus: 1\n");
	put("p.yaml",
	    "p:\n"
	    "  core: {imports: [t.yaml], environments: {e: {overrides: {exec.a: {x: 1}}}}}\n"
	    "  exec:\n"
	    "    - {name: a, template: t}\n");
	ck_assert_int_eq(orchd(NULL, &err, "validate", file, "--env", "e", END), 2);
	assert_has(err, "t.yaml:6:9: error: exec.a: unknown key 'bogus'\n");
	assert_has(err, "p.yaml:2:69: error: exec.a: unknown key 'x'\n");
	free(err);
	free(file);
}
END_TEST

/* ---- orchd affected on a real repository ----------------------------------------- */

static void git(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void git(const char *fmt, ...)
{
	char *cmd, *full;
	va_list ap;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	full = xasprintf(
		"cd '%s' && git -c user.email=t@t -c user.name=t -c init.defaultBranch=main "
		"%s >/dev/null 2>&1",
		tmp, cmd);
	ck_assert_msg(system(full) == 0, "failed: %s", full);
	free(full);
	free(cmd);
}

/* orchd affected, its stdout (ids) and stderr in *err (may be NULL). */
static char *affected(const char *since, char **err, int want)
{
	char *out, *e, *file = xasprintf("%s/pipeline.yaml", tmp);

	ck_assert_int_eq(orchd(&out, &e, "affected", file, "--env", "prod", "--since", since, END),
			 want);
	free(file);
	if (err)
		*err = e;
	else
		free(e);
	return out;
}

#define assert_affected(since, want)                     \
	do {                                             \
		char *got_ = affected((since), NULL, 0); \
		ck_assert_str_eq(got_, (want));          \
		free(got_);                              \
	} while (0)

START_TEST(test_affected)
{
	char *out, *err;

	put("common.yaml", common_yaml);
	put("pipeline.yaml",
	    "app:\n"
	    "  core:\n"
	    "    imports: [common.yaml]\n"
	    "    environments: {prod: {vars: {tier: prod}}}\n"
	    "  exec:\n"
	    "    - {name: web, template: svc, with: {name: web}}\n"
	    "    - {name: api, template: svc, with: {name: api}}\n"
	    "    - {name: edge, command: [true], depends_on: [web], watch: ['conf/*.cfg']}\n"
	    "    - {name: tail, command: [true], depends_on: [edge]}\n"
	    "    - {name: old, command: [true]}\n");
	put("conf/a.cfg", "1\n");
	git("init -q .");
	git("add -A");
	git("commit -q -m one");
	/* nothing changed */
	assert_affected("HEAD", "");
	/* an instance's own key: it and its dependents */
	put("pipeline.yaml",
	    "app:\n"
	    "  core:\n"
	    "    imports: [common.yaml]\n"
	    "    environments: {prod: {vars: {tier: prod}}}\n"
	    "  exec:\n"
	    "    - {name: web, template: svc, with: {name: web, port: 81}}\n"
	    "    - {name: api, template: svc, with: {name: api}}\n"
	    "    - {name: edge, command: [true], depends_on: [web], watch: ['conf/*.cfg']}\n"
	    "    - {name: tail, command: [true], depends_on: [edge]}\n"
	    "    - {name: old, command: [true]}\n");
	assert_affected("HEAD", "exec.web\nexec.edge\nexec.tail\n");
	git("commit -q -a -m two");
	/* an import that changed: every instance made from it */
	put("common.yaml",
	    "core:\n"
	    "  templates:\n"
	    "    svc:\n"
	    "      params:\n"
	    "        name: {type: string, required: true}\n"
	    "        port: {type: number, default: 80}\n"
	    "      config:\n"
	    "        command: [sh, -c, 'echo \"u=${{ params.name }}\" >> \"$ORCHD_OUTPUT\"']\n");
	assert_affected("HEAD", "exec.web\nexec.api\nexec.edge\nexec.tail\n");
	out = affected("HEAD~1", NULL, 0);
	ck_assert_str_eq(out, "exec.web\nexec.api\nexec.edge\nexec.tail\n");
	free(out);
	git("commit -q -a -m three");
	/* a watched file, and an untracked one */
	put("conf/a.cfg", "2\n");
	assert_affected("HEAD", "exec.edge\nexec.tail\n");
	git("checkout -q -- conf/a.cfg");
	put("conf/new.cfg", "x\n");
	assert_affected("HEAD", "exec.edge\nexec.tail\n");
	put("conf/new.txt", "x\n");
	{
		char *gone = xasprintf("%s/conf/new.cfg", tmp);

		unlink(gone);
		free(gone);
	}
	assert_affected("HEAD", "");
	/* renamed and deleted instances */
	put("pipeline.yaml",
	    "app:\n"
	    "  core:\n"
	    "    imports: [common.yaml]\n"
	    "    environments: {prod: {vars: {tier: prod}}}\n"
	    "  exec:\n"
	    "    - {name: web, template: svc, with: {name: web, port: 81}}\n"
	    "    - {name: api2, template: svc, with: {name: api}}\n"
	    "    - {name: edge, command: [true], depends_on: [web], watch: ['conf/*.cfg']}\n"
	    "    - {name: tail, command: [true], depends_on: [edge]}\n");
	out = affected("HEAD", &err, 0);
	ck_assert_str_eq(out, "exec.api2\n");
	assert_has(err,
		   "to destroy: exec.api (gone since HEAD; orchd never destroys it by itself)\n");
	assert_has(err,
		   "to destroy: exec.old (gone since HEAD; orchd never destroys it by itself)\n");
	free(out);
	free(err);
	/* json */
	{
		char *file = xasprintf("%s/pipeline.yaml", tmp);

		ck_assert_int_eq(orchd(&out, &err, "affected", file, "--env", "prod", "--since",
				       "HEAD", "--format", "json", END),
				 0);
		assert_has(out, "\"affected\": [\n    {\n      \"id\": \"exec.api2\",\n      "
				"\"reason\": \"new\"\n    }\n  ],\n  \"to_destroy\": [\n    "
				"\"exec.api\",\n    \"exec.old\"\n  ]");
		free(out);
		free(err);
		free(file);
	}
	/* errors */
	out = affected("no-such-ref", &err, 2);
	assert_has(err, "error: unknown revision 'no-such-ref' (not a commit, branch or tag of the "
			"repository)\n");
	free(out);
	free(err);
}
END_TEST

START_TEST(test_affected_edges)
{
	char *out, *err, *file, *clone, *cmd, *outside;

	put("pipeline.yaml", "app:\n"
			     "  core: {environments: {prod: {}}}\n"
			     "  exec:\n"
			     "    - {name: a, command: [true]}\n");
	git("init -q .");
	git("add -A");
	git("commit -q -m one");
	git("commit -q --allow-empty -m two");
	git("commit -q --allow-empty -m three");
	/* a shallow clone that does not reach the revision */
	clone = xasprintf("%s/clone", tmp);
	cmd = xasprintf("git clone -q --depth 1 'file://%s' '%s' >/dev/null 2>&1", tmp, clone);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	file = xasprintf("%s/pipeline.yaml", clone);
	ck_assert_int_eq(
		orchd(&out, &err, "affected", file, "--env", "prod", "--since", "HEAD~2", END), 2);
	assert_has(err, "error: cannot find revision 'HEAD~2': the repository is a shallow clone "
			"that does not reach it; fetch more history (git fetch --unshallow, or a "
			"larger --depth) and try again\n");
	free(out);
	free(err);
	free(file);
	/* a full clone, compared with its origin/main as CI does */
	cmd = xasprintf("git clone -q 'file://%s' '%s/full' >/dev/null 2>&1 && cd '%s/full' && "
			"sed -i 's/command: \\[true\\]/command: [false]/' pipeline.yaml",
			tmp, tmp, tmp);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	file = xasprintf("%s/full/pipeline.yaml", tmp);
	ck_assert_int_eq(
		orchd(&out, &err, "affected", file, "--env", "prod", "--since", "origin/main", END),
		0);
	ck_assert_str_eq(out, "exec.a\n");
	free(out);
	free(err);
	free(file);
	/* a file outside the repository: everything counts as affected */
	outside = test_tmpdir();
	cmd = xasprintf("%s/out.yaml", outside);
	{
		FILE *fp = fopen(cmd, "w");

		ck_assert_ptr_nonnull(fp);
		fputs("exec:\n  - {name: b, command: [true]}\n", fp);
		fclose(fp);
	}
	put("pipeline.yaml", "");
	{
		char *text = xasprintf("app:\n"
				       "  core: {imports: ['%s'], environments: {prod: {}}}\n"
				       "  exec:\n"
				       "    - {name: a, command: [true]}\n",
				       cmd);

		put("pipeline.yaml", text);
		free(text);
	}
	git("commit -q -a -m four");
	out = affected("HEAD", &err, 0);
	ck_assert_str_eq(out, "exec.b\nexec.a\n");
	assert_has(err, "note: ");
	assert_has(err, "out.yaml is outside the repository (");
	free(out);
	free(err);
	free(cmd);
	test_rmtree(outside);
	free(outside);
	/* not in a repository */
	cmd = test_tmpdir();
	file = xasprintf("%s/p.yaml", cmd);
	{
		FILE *fp = fopen(file, "w");

		ck_assert_ptr_nonnull(fp);
		fputs("p:\n  exec:\n    - {name: a}\n", fp);
		fclose(fp);
	}
	ck_assert_int_eq(orchd(&out, &err, "affected", file, "--since", "HEAD", END), 2);
	assert_has(err, "p.yaml' is not inside a git repository\n");
	free(out);
	free(err);
	free(file);
	test_rmtree(cmd);
	free(cmd);
	free(clone);
}
END_TEST

/* Watched paths: globs over directories, and a path that leaves the
 * repository's top and comes back in. */
START_TEST(test_affected_globs)
{
	const char *base = strrchr(tmp, '/') + 1;
	char *text, *out;

	text = xasprintf("app:\n"
			 "  core: {environments: {prod: {}}}\n"
			 "  exec:\n"
			 "    - {name: star, watch: ['d*/**']}\n"
			 "    - {name: mid, watch: ['data/su*/**']}\n"
			 "    - {name: dir, watch: ['data/*/deep']}\n"
			 "    - {name: one, watch: ['data/s?b/deep/f.txt']}\n"
			 "    - {name: back, watch: ['../%s/data/top.txt']}\n"
			 "    - {name: other, watch: ['data/sub/x/**', 'elsewhere']}\n",
			 base);
	put("pipeline.yaml", text);
	free(text);
	put("data/sub/deep/f.txt", "1\n");
	put("data/top.txt", "1\n");
	git("init -q .");
	git("add -A");
	git("commit -q -m one");
	assert_affected("HEAD", "");
	put("data/sub/deep/f.txt", "2\n");
	assert_affected("HEAD", "exec.star\nexec.mid\nexec.dir\nexec.one\n");
	git("checkout -q -- data");
	put("data/top.txt", "2\n");
	out = affected("HEAD", NULL, 0);
	ck_assert_str_eq(out, "exec.star\nexec.back\n");
	free(out);
}
END_TEST

START_TEST(test_run_since)
{
	char *out, *err, *file = xasprintf("%s/pipeline.yaml", tmp);

	put("pipeline.yaml", "app:\n"
			     "  exec:\n"
			     "    - {name: a, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT']}\n"
			     "    - {name: b, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT']}\n"
			     "    - {name: c, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT'], "
			     "depends_on: [a]}\n");
	git("init -q .");
	git("add -A");
	git("commit -q -m one");
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "--since", "HEAD", END), 0);
	assert_has(err, "nothing affected since HEAD (");
	free(err);
	ck_assert_int_eq(orchd(&out, &err, "outputs", file, END), 0);
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
	put("pipeline.yaml", "app:\n"
			     "  exec:\n"
			     "    - {name: a, command: [sh, -c, 'echo v=2 >> $ORCHD_OUTPUT']}\n"
			     "    - {name: b, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT']}\n"
			     "    - {name: c, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT'], "
			     "depends_on: [a]}\n");
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "--since", "HEAD", "-q", END), 0);
	free(err);
	/* exactly a and its dependent c ran */
	ck_assert_int_eq(orchd(&out, &err, "outputs", file, END), 0);
	ck_assert_str_eq(out, "exec.a.v = 2\nexec.c.v = 1\n");
	free(out);
	free(err);
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "--since", "HEAD", "-t", "a", END), 2);
	assert_has(err, "--since selects the instances: not with --target");
	free(err);
	/* an instance deleted since REF: reported, its stack left alone */
	git("commit -q -a -m two");
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "-q", END), 0);
	free(err);
	put("pipeline.yaml", "app:\n"
			     "  exec:\n"
			     "    - {name: a, command: [sh, -c, 'echo v=2 >> $ORCHD_OUTPUT']}\n"
			     "    - {name: c, command: [sh, -c, 'echo v=1 >> $ORCHD_OUTPUT'], "
			     "depends_on: [a]}\n");
	ck_assert_int_eq(orchd(NULL, &err, "run", file, "--since", "HEAD", END), 0);
	assert_has(err,
		   "to destroy: exec.b (gone since HEAD; orchd never destroys it by itself)\n");
	assert_has(err, "nothing affected since HEAD (");
	free(err);
	{
		char *stack = xasprintf("%s/.orchd/stacks/dev-exec-b.json", tmp);
		struct stat st;

		ck_assert_int_eq(stat(stack, &st), 0);
		free(stack);
	}
	free(file);
}
END_TEST

/* ---- git imports, pinned ----------------------------------------------------------- */

START_TEST(test_git_import)
{
	char *repo = xasprintf("%s/lib", tmp), *cmd, *e, *cache = xasprintf("%s/cache", tmp);
	char head[64] = "";
	struct orchd_pipeline *p;
	struct orchd_load_opts o;
	struct orchd_diags d;
	FILE *fp;

	put("lib/shared/svc.yaml", "core: {imports: [more.yaml]}\nexec:\n  - {name: from-git}\n");
	put("lib/shared/more.yaml", "exec:\n  - {name: more}\n");
	cmd = xasprintf("cd '%s' && git init -q -b main . && git add -A && git -c user.email=t@t "
			"-c user.name=t commit -q -m one && git tag v1 && git rev-parse HEAD",
			repo);
	fp = popen(cmd, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(head, sizeof(head), fp));
	ck_assert_int_eq(pclose(fp), 0);
	head[strcspn(head, "\n")] = '\0';
	free(cmd);

	for (int k = 0; k < 3; k++) {
		const char *ref = k == 0 ? "v1" : k == 1 ? head : "main";
		char *text = xasprintf("p:\n  core:\n    imports:\n      - {git: '%s', ref: '%s', "
				       "path: shared/svc.yaml}\n",
				       repo, ref);
		char *path = xasprintf("%s/p.yaml", tmp);

		put("p.yaml", text);
		memset(&o, 0, sizeof(o));
		o.git_cache_dir = cache;
		orchd_diags_init(&d);
		if (k < 2) {
			ck_assert_int_eq(orchd_bootstrap_load_opts(path, &o, &p, &d), 0);
			ck_assert_uint_eq(p->ninst, 2);
			ck_assert_str_eq(p->inst[0].id, "exec.more");
			ck_assert_str_eq(p->inst[1].id, "exec.from-git");
			e = xasprintf("%s@%.12s:shared/svc.yaml", repo, head);
			ck_assert_str_eq(orchd_pos_file(p, p->inst[1].pos), e);
			free(e);
		} else {
			/* a branch is not pinned */
			ck_assert_int_eq(orchd_bootstrap_load_opts(path, &o, &p, &d), -1);
			ck_assert_uint_eq(d.n, 1);
			e = xasprintf(
				"core.imports: 'main' of '%s' is a branch: pin it to a commit "
				"id (40 hex digits) or a tag",
				repo);
			ck_assert_str_eq(d.v[0].msg, e);
			ck_assert_uint_eq(d.v[0].line, 4);
			free(e);
		}
		orchd_pipeline_free(p);
		orchd_diags_release(&d);
		free(text);
		free(path);
	}
	/* the same file by commit, then by tag: merged once */
	{
		char *text =
			xasprintf("p:\n  core:\n    imports:\n      - {git: '%s', ref: '%s', path: "
				  "shared/svc.yaml}\n      - {git: '%s', ref: v1, path: "
				  "shared/svc.yaml}\n",
				  repo, head, repo);
		char *path = xasprintf("%s/p.yaml", tmp);

		put("p.yaml", text);
		memset(&o, 0, sizeof(o));
		o.git_cache_dir = cache;
		orchd_diags_init(&d);
		ck_assert_int_eq(orchd_bootstrap_load_opts(path, &o, &p, &d), 0);
		ck_assert_uint_eq(p->ninst, 2);
		orchd_pipeline_free(p);
		orchd_diags_release(&d);
		free(text);
		free(path);
	}
	free(repo);
	free(cache);
}
END_TEST

Suite *compose_suite(void)
{
	Suite *s = suite_create("compose");
	TCase *tc = tcase_create("compose");
	TCase *cli = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* the expansion bounds expand millions of nodes: slow under ASan */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_merge_rules);
	tcase_add_test(tc, test_import_paths_and_diamond);
	tcase_add_test(tc, test_import_errors);
	tcase_add_test(tc, test_duplicate_across_files);
	tcase_add_test(tc, test_templates);
	tcase_add_test(tc, test_template_errors);
	tcase_add_test(tc, test_template_expansion_bound);
	tcase_add_test(tc, test_environments);
	tcase_add_test(tc, test_environment_errors);
	tcase_add_test(tc, test_git_import);
	tcase_add_test(tc, test_hostile_findings);
	tcase_add_test(tc, test_import_links);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_set_timeout(cli, 120);
	tcase_add_test(cli, test_issue_example);
	tcase_add_test(cli, test_multi_env_example);
	tcase_add_test(cli, test_error_located_in_template);
	tcase_add_test(cli, test_affected);
	tcase_add_test(cli, test_affected_edges);
	tcase_add_test(cli, test_run_since);
	tcase_add_test(cli, test_affected_globs);
	suite_add_tcase(s, cli);
	return s;
}
