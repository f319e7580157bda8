/*
 * Tests of core/bootstrap and models/pipeline: the YAML -> model path, the
 * bounds, and the invalid-config corpus run through the real orchd binary.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bootstrap.h"
#include "core/graph.h"
#include "core/refs.h"
#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "testutil.h"
#include "util.h"

/* Load a string; returns the pipeline (or NULL) and the printed errors. */
static struct orchd_pipeline *load(const char *yaml, char **errs)
{
	struct orchd_diags d;
	struct orchd_pipeline *p = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;
	int ret;

	orchd_diags_init(&d);
	ret = orchd_bootstrap_load("t.yaml", yaml, strlen(yaml), &p, &d);
	if (!ret && p)
		ret = orchd_pipeline_validate(p, NULL, 0, &d);
	fp = open_memstream(&buf, &len);
	orchd_diags_print(&d, fp);
	fclose(fp);
	orchd_diags_release(&d);
	if (errs)
		*errs = buf;
	else
		free(buf);
	if (ret < 0) {
		orchd_pipeline_free(p);
		return NULL;
	}
	return p;
}

/* An instance's own config blob, parsed from its text; valid until the
 * next call (own(NULL) releases it). */
static json_object *own(const struct orchd_instance *in)
{
	static json_object *held;

	json_object_put(held);
	held = in ? orchd_instance_own_config(in) : NULL;
	return held;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

START_TEST(test_model_basic)
{
	const char *yaml = "my-pipeline:\n"
			   "  core:\n"
			   "    stack: prod\n"
			   "    parallelism: 3\n"
			   "    state_dir: st\n"
			   "    engine: {type: pulumi, backend: 'file:///x', project: proj}\n"
			   "    execution_defaults: {max_attempts: 3, timeout: 5m, grace: 2s,\n"
			   "      retry_backoff: {initial: 250ms, max: 1h30m, factor: 1.5}}\n"
			   "    env: {AWS_REGION: eu-west-1, PORT: 8080}\n"
			   "  exec:\n"
			   "    - name: build\n"
			   "      command: [make, all]\n"
			   "    - name: test\n"
			   "      depends_on: build\n"
			   "      enabled: false\n"
			   "      execution: {max_attempts: 2, timeout: 90}\n"
			   "      pass_env: [HOME_TOKEN]\n"
			   "      mock_outputs: {url: 'http://x'}\n"
			   "      sources: [{git: 'https://example.invalid/r.git', ref: main}]\n"
			   "      n: 12\n"
			   "      f: 1.5e3\n"
			   "      q: '12'\n"
			   "      b: true\n"
			   "      z: ~\n";
	struct orchd_pipeline *p = load(yaml, NULL);
	struct orchd_instance *t;
	json_object *v;
	char *stack;

	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "my-pipeline");
	ck_assert_str_eq(p->core.stack, "prod");
	ck_assert_int_eq(p->core.parallelism, 3);
	ck_assert_str_eq(p->core.state_dir, "st");
	ck_assert_int_eq(p->core.engine.type, ORCHD_ENGINE_PULUMI);
	ck_assert_str_eq(p->core.engine.backend, "file:///x");
	ck_assert_str_eq(p->core.engine.project, "proj");
	ck_assert_int_eq(p->core.defaults.max_attempts, 3);
	ck_assert_int_eq(p->core.defaults.timeout_ms, 300000);
	ck_assert_int_eq(p->core.defaults.grace_ms, 2000);
	ck_assert_int_eq(p->core.defaults.backoff_initial_ms, 250);
	ck_assert_int_eq(p->core.defaults.backoff_max_ms, 5400000);
	ck_assert(p->core.defaults.backoff_factor == 1.5);
	ck_assert_str_eq(jstr(p->core.env, "PORT"), "8080");
	ck_assert_uint_eq(p->ninst, 2);
	ck_assert_uint_eq(p->ntypes, 1);
	ck_assert_str_eq(p->types[0], "exec");
	t = &p->inst[1];
	ck_assert_str_eq(t->id, "exec.test");
	ck_assert_uint_eq(t->pos.line, 13);
	ck_assert_uint_eq(t->pos.column, 7);
	ck_assert_uint_eq(t->name_pos.line, 13);
	ck_assert_uint_eq(t->name_pos.column, 13);
	ck_assert_int_eq(t->enabled, 0);
	ck_assert_int_eq(t->exec.max_attempts, 2);
	ck_assert_int_eq(t->exec.timeout_ms, 90000);
	ck_assert_int_eq(t->exec.grace_ms, 2000); /* from the core defaults */
	ck_assert_uint_eq(t->ndeps, 1);
	ck_assert_uint_eq(t->deps[0], 0);
	ck_assert_uint_eq(t->npass_env, 1);
	ck_assert_str_eq(t->pass_env[0], "HOME_TOKEN");
	ck_assert_str_eq(jstr(t->mock_outputs, "url"), "http://x");
	/* Reserved keys are not in the blob; scalars are typed. */
	ck_assert_str_eq(json_object_to_json_string_ext(own(t), JSON_C_TO_STRING_PLAIN),
			 "{\"n\":12,\"f\":1500.0,\"q\":\"12\",\"b\":true,\"z\":null}");
	ck_assert(json_object_object_get_ex(own(&p->inst[0]), "command", &v));
	stack = orchd_instance_stack(p, t);
	ck_assert_str_eq(stack, "prod-exec-test");
	free(stack);
	own(NULL);
	orchd_pipeline_free(p);
}
END_TEST

START_TEST(test_durations)
{
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {{"0", 0},	   {"90", 90000},  {"90s", 90000},     {"5m", 300000},
		  {"1h", 3600000}, {"250ms", 250}, {"1h30m", 5400000}, {"1m30s500ms", 90500}};
	static const char *const bad[] = {"",	  "1d", "5 m", "1.5",  "-3s",	     "1s1m",
					  "1m1m", "ms", "10x", "1h30", "99999999999"};
	size_t i;
	int64_t ms;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		ck_assert_msg(orchd_parse_duration(ok[i].s, &ms) == 0, "%s", ok[i].s);
		ck_assert_int_eq(ms, ok[i].ms);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(orchd_parse_duration(bad[i], &ms) < 0, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_exec_merge_and_config_merge)
{
	const char *yaml = "p:\n"
			   "  core:\n"
			   "    defaults:\n"
			   "      exec: {binary: tofu, opts: {a: 1, b: 2}, list: [1, 2]}\n"
			   "  exec:\n"
			   "    - name: a\n"
			   "      opts: {b: 3, c: 4}\n"
			   "      list: [9]\n";
	struct orchd_pipeline *p = load(yaml, NULL);
	struct orchd_exec base, over;
	json_object *cfg;

	ck_assert_ptr_nonnull(p);
	cfg = orchd_instance_config(p, &p->inst[0]);
	ck_assert_str_eq(json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN),
			 "{\"binary\":\"tofu\",\"opts\":{\"a\":1,\"b\":3,\"c\":4},\"list\":[9]}");
	json_object_put(cfg);
	/* The defaults object is left untouched by the merge. */
	ck_assert_str_eq(
		json_object_to_json_string_ext(p->core.type_defaults, JSON_C_TO_STRING_PLAIN),
		"{\"exec\":{\"binary\":\"tofu\",\"opts\":{\"a\":1,\"b\":2},\"list\":[1,2]}}");
	orchd_pipeline_free(p);

	orchd_exec_set_defaults(&base);
	orchd_exec_set_defaults(&over);
	over.timeout_ms = 5;
	over.max_attempts = 7; /* not marked set: ignored */
	over.set = ORCHD_EXEC_TIMEOUT;
	orchd_exec_merge(&base, &over);
	ck_assert_int_eq(base.timeout_ms, 5);
	ck_assert_int_eq(base.max_attempts, 1);
	ck_assert_uint_eq(base.set, ORCHD_EXEC_TIMEOUT);
}
END_TEST

/*
 * An instance's config is kept as JSON text until it is handed over; what
 * comes back from the text is what the YAML said: strings with every byte
 * (NUL, control characters, quotes, backslashes, UTF-8), numbers printing
 * as json-c prints them (the config hash is made from that text), nesting
 * as deep as the loader allows, and the core's defaults merged in.
 */
START_TEST(test_config_text_round_trip)
{
	static const char yaml[] =
		"p:\n"
		"  core:\n"
		"    defaults:\n"
		"      exec: {opts: {keep: 1, x: 0}, only_default: yes}\n"
		"  exec:\n"
		"    - name: t\n"
		"      s: \"a\\0b\\x01\\t\\n\\\"q\\\" back\\\\slash / \\u00e9\\u4e2d\\U0001F600\"\n"
		"      \"key \\\"with\\\" quotes\\n\": 1\n"
		"      f1: 0.1\n"
		"      f2: 1.0e300\n"
		"      f3: -0.0\n"
		"      f4: 1.5\n"
		"      i1: 9223372036854775807\n"
		"      i2: -9223372036854775808\n"
		"      i3: 0x1F\n"
		"      i4: 0o17\n"
		"      n: ~\n"
		"      b: False\n"
		"      q: '12'\n"
		"      l: [[], {}, [1, [2, [3]]]]\n"
		"      esc: \"$${{ not.a.ref }}\"\n"
		"      opts: {x: 2}\n"
		"      deep: "
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[deep]]]]]]]]]]]]]]]]]]]]]]]]]]"
		"]]]]]]]]]]]]]]]]]]]]]]]]]]\n";
	struct orchd_pipeline *p = load(yaml, NULL);
	static const char want_s[] =
		"a\0b\x01\t\n\"q\" back\\slash / \xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80";
	const double doubles[] = {0.1, 1.0e300, -0.0, 1.5};
	json_object *cfg, *v;
	char key[8];
	size_t depth;

	ck_assert_ptr_nonnull(p);
	cfg = orchd_instance_config(p, &p->inst[0]);
	ck_assert(json_object_object_get_ex(cfg, "s", &v));
	ck_assert_int_eq(json_object_get_string_len(v), (int)sizeof(want_s) - 1);
	ck_assert(!memcmp(json_object_get_string(v), want_s, sizeof(want_s) - 1));
	ck_assert(json_object_object_get_ex(cfg, "key \"with\" quotes\n", &v));
	for (int i = 0; i < 4; i++) {
		json_object *d = json_object_new_double(doubles[i]);

		snprintf(key, sizeof(key), "f%d", i + 1);
		ck_assert(json_object_object_get_ex(cfg, key, &v));
		ck_assert(json_object_is_type(v, json_type_double));
		ck_assert(memcmp(&(double){json_object_get_double(v)}, &doubles[i],
				 sizeof(double)) == 0);
		ck_assert_str_eq(json_object_to_json_string(v), json_object_to_json_string(d));
		json_object_put(d);
	}
	ck_assert(json_object_object_get_ex(cfg, "i1", &v));
	ck_assert(json_object_get_int64(v) == INT64_MAX);
	ck_assert(json_object_object_get_ex(cfg, "i2", &v));
	ck_assert(json_object_get_int64(v) == INT64_MIN);
	ck_assert(json_object_object_get_ex(cfg, "i3", &v));
	ck_assert_int_eq(json_object_get_int64(v), 31);
	ck_assert(json_object_object_get_ex(cfg, "i4", &v));
	ck_assert_int_eq(json_object_get_int64(v), 15);
	ck_assert(json_object_object_get_ex(cfg, "n", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(cfg, "b", &v));
	ck_assert(json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
	ck_assert(json_object_object_get_ex(cfg, "q", &v));
	ck_assert(json_object_is_type(v, json_type_string));
	ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(cfg, "l"),
							JSON_C_TO_STRING_PLAIN),
			 "[[],{},[1,[2,[3]]]]");
	ck_assert_str_eq(jstr(cfg, "esc"), "${{ not.a.ref }}");
	/* merged with core.defaults.exec: objects key by key, the instance wins */
	ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(cfg, "opts"),
							JSON_C_TO_STRING_PLAIN),
			 "{\"keep\":1,\"x\":2}");
	ck_assert(json_object_object_get_ex(cfg, "only_default", &v));
	ck_assert(json_object_get_boolean(v));
	v = json_object_object_get(cfg, "deep");
	for (depth = 0; json_object_is_type(v, json_type_array); depth++)
		v = json_object_array_get_idx(v, 0);
	ck_assert_uint_eq(depth, 52);
	ck_assert_str_eq(json_object_get_string(v), "deep");
	json_object_put(cfg);
	orchd_pipeline_free(p);
}
END_TEST

START_TEST(test_refs)
{
	const char *yaml =
		"p:\n"
		"  exec:\n"
		"    - name: build\n"
		"  shell:\n"
		"    - name: t\n"
		"      m: \"v=${{exec.build.outputs.version}} ${{ exec.build.outputs.url }}\"\n"
		"      esc: \"$${{ exec.nothere.outputs.x }}\"\n"
		"      deep: {l: [\"${{ exec.build.outputs.x-y_z }}\"]}\n";
	struct orchd_pipeline *p = load(yaml, NULL);
	struct orchd_instance *t;

	ck_assert_ptr_nonnull(p);
	t = &p->inst[1];
	ck_assert_uint_eq(t->nrefs, 3);
	ck_assert_str_eq(t->refs[0].target, "exec.build");
	ck_assert_str_eq(t->refs[0].key, "version");
	ck_assert_str_eq(t->refs[0].path, "p.shell[0].m");
	ck_assert_uint_eq(t->refs[0].pos.line, 6);
	ck_assert_str_eq(t->refs[1].key, "url");
	ck_assert_str_eq(t->refs[2].key, "x-y_z");
	ck_assert_str_eq(t->refs[2].path, "p.shell[0].deep.l[0]");
	ck_assert_uint_eq(t->refs[2].target_index, 0);
	/* Refs add one deduplicated edge; a string with only the escape is
	 * stored as the extension sees it, one with references as written
	 * (it is a site: parsed once, resolved at run time). */
	ck_assert_uint_eq(t->ndeps, 1);
	ck_assert_str_eq(jstr(own(t), "esc"), "${{ exec.nothere.outputs.x }}");
	ck_assert_str_eq(jstr(own(t), "m"),
			 "v=${{exec.build.outputs.version}} ${{ exec.build.outputs.url }}");
	ck_assert_uint_eq(t->nsites, 2);
	ck_assert_uint_eq(t->sites[0].nloc, 1);
	ck_assert_str_eq(t->sites[0].loc[0].key, "m");
	ck_assert_uint_eq(t->sites[0].nparts, 4);
	ck_assert_str_eq(t->sites[0].parts[0].text, "v=");
	ck_assert_uint_eq(t->sites[0].parts[1].ref, 0);
	ck_assert_str_eq(t->sites[0].parts[2].text, " ");
	ck_assert_uint_eq(t->sites[0].parts[3].ref, 1);
	ck_assert_uint_eq(t->sites[1].nloc, 3);
	ck_assert_str_eq(t->sites[1].loc[0].key, "deep");
	ck_assert_str_eq(t->sites[1].loc[1].key, "l");
	ck_assert_ptr_null(t->sites[1].loc[2].key);
	ck_assert_uint_eq(t->sites[1].loc[2].index, 0);
	own(NULL);
	orchd_pipeline_free(p);
}
END_TEST

/*
 * orchd_ref_parse() takes s[0..len), not a C string: found by fuzz_refs
 * (tests/fuzz/), the quote of an unterminated reference read on past len.
 * The input ends right before a PROT_NONE page, so any read past it
 * faults even without ASan.
 */
START_TEST(test_ref_parse_unterminated_not_nul_terminated)
{
	static const char input[] = "${{\n\a\240\n\n"; /* the fuzzer's input */
	size_t len = sizeof(input) - 1, page = (size_t)sysconf(_SC_PAGESIZE);
	struct orchd_ref_parsed r;
	char err[256], *map, *s;

	map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(map, MAP_FAILED);
	ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
	s = map + page - len;
	memcpy(s, input, len);
	ck_assert_int_eq(orchd_ref_parse(s, len, &r, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unterminated reference '${{\n\a\240\n\n' (missing '}}')");
	orchd_ref_parsed_release(&r);
	munmap(map, 2 * page);
}
END_TEST

START_TEST(test_anchors_aliases_merge_keys)
{
	const char *yaml = "p:\n"
			   "  exec:\n"
			   "    - &base\n"
			   "      name: a\n"
			   "      opts: &o {x: 1, y: 2}\n"
			   "      keep: k\n"
			   "    - <<: *base\n"
			   "      name: b\n"
			   "      keep: mine\n"
			   "    - <<: [{name: c, x: first}, {x: second, y: 2}]\n"
			   "      copy: *o\n";
	struct orchd_pipeline *p = load(yaml, NULL);

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->ninst, 3);
	ck_assert_str_eq(p->inst[1].name, "b");
	ck_assert_str_eq(jstr(own(&p->inst[1]), "keep"), "mine");
	ck_assert_str_eq(json_object_to_json_string_ext(own(&p->inst[1]), JSON_C_TO_STRING_PLAIN),
			 "{\"keep\":\"mine\",\"opts\":{\"x\":1,\"y\":2}}");
	ck_assert_str_eq(p->inst[2].name, "c");
	ck_assert_str_eq(json_object_to_json_string_ext(own(&p->inst[2]), JSON_C_TO_STRING_PLAIN),
			 "{\"copy\":{\"x\":1,\"y\":2},\"x\":\"first\",\"y\":2}");
	own(NULL);
	orchd_pipeline_free(p);
}
END_TEST

/* A pipeline whose instance aliases one 1 MiB string n times. */
static void big_string_copies(struct op_buf *sb, int n)
{
	op_buf_reset(sb);
	op_buf_addstr(sb, "p:\n  exec:\n    - name: a\n      big: &b \"");
	for (int i = 0; i < (1 << 20); i++)
		op_buf_addch(sb, 'x');
	op_buf_addstr(sb, "\"\n      copies: [*b");
	for (int i = 1; i < n; i++)
		op_buf_addstr(sb, ", *b");
	op_buf_addstr(sb, "]\n");
}

START_TEST(test_bounds)
{
	struct orchd_pipeline *p;
	struct op_buf sb = OP_BUF_INIT;
	char *errs;
	int i;

	/* Nesting: 64 levels pass, 65 fail. */
	op_buf_addstr(&sb, "p:\n  exec:\n    - name: a\n      d: ");
	for (i = 0; i < 60; i++)
		op_buf_addch(&sb, '[');
	for (i = 0; i < 60; i++)
		op_buf_addch(&sb, ']');
	op_buf_addch(&sb, '\n');
	p = load(op_buf_str(&sb), NULL);
	ck_assert_ptr_nonnull(p);
	orchd_pipeline_free(p);
	op_buf_reset(&sb);
	op_buf_addstr(&sb, "p:\n  exec:\n    - name: a\n      d: ");
	for (i = 0; i < 61; i++)
		op_buf_addch(&sb, '[');
	for (i = 0; i < 61; i++)
		op_buf_addch(&sb, ']');
	op_buf_addch(&sb, '\n');
	ck_assert_ptr_null(load(op_buf_str(&sb), &errs));
	ck_assert_str_eq(errs, "t.yaml:4:70: error: nesting too deep (limit 64 levels)\n");
	free(errs);

	/* Alias budget: 9^6 nodes would be produced; refused early. */
	op_buf_reset(&sb);
	op_buf_addstr(&sb, "a: &a [x,x,x,x,x,x,x,x,x]\n");
	for (i = 1; i < 7; i++)
		op_buf_addf(&sb, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", 'a' + i,
			    'a' + i, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
			    'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1);
	ck_assert_ptr_null(load(op_buf_str(&sb), &errs));
	ck_assert_str_eq(errs,
			 "t.yaml:6:8: error: aliases expand to too many nodes (limit 100000): "
			 "refusing a possible billion laughs document\n");
	free(errs);

	/* Few nodes, much text: a 1 MiB string aliased 17 times would make
	 * 17 MiB more (it once took 24 GiB to make 2000 copies of 8 MiB). */
	big_string_copies(&sb, 17);
	ck_assert_ptr_null(load(op_buf_str(&sb), &errs));
	ck_assert_str_eq(errs,
			 "t.yaml:5:80: error: aliases expand to too much text (limit 16 MiB): "
			 "refusing a possible billion laughs document\n");
	free(errs);
	/* 16 copies are allowed */
	big_string_copies(&sb, 16);
	p = load(op_buf_str(&sb), NULL);
	ck_assert_ptr_nonnull(p);
	orchd_pipeline_free(p);
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_top_level_shapes)
{
	static const struct {
		const char *yaml, *err;
	} cases[] = {
		{"[]",
		 "t.yaml:1:1: error: top level: expected a mapping with one key (the pipeline "
		 "name), got a sequence\n"},
		{"{}",
		 "t.yaml:1:1: error: top level: expected a mapping with one key (the pipeline "
		 "name), got an empty mapping\n"},
		{"word", "t.yaml:1:1: error: top level: expected a mapping with one key (the "
			 "pipeline name), got a string\n"},
		{"", "t.yaml:1:1: error: empty file (expected a mapping with one key, the pipeline "
		     "name)\n"},
		{"p: {exec: []}", NULL},
		{"p:\n  exec: [{name: a, l: [], m: {}}]\n", NULL},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct orchd_pipeline *p;
		char *errs;

		p = load(cases[i].yaml, &errs);
		if (cases[i].err) {
			ck_assert_ptr_null(p);
			ck_assert_str_eq(errs, cases[i].err);
		} else {
			ck_assert_msg(p != NULL, "%s: %s", cases[i].yaml, errs);
		}
		orchd_pipeline_free(p);
		free(errs);
	}
}
END_TEST

START_TEST(test_long_message_cut)
{
	struct op_buf sb = OP_BUF_INIT;
	struct orchd_pipeline *p = NULL;
	struct orchd_diags d;
	int i;

	op_buf_addstr(&sb, "p:\n  core:\n    engine: {type: x");
	for (i = 0; i < 3000; i++)
		op_buf_addstr(&sb, "\xc3\xa9"); /* two bytes each: the cut must not split one */
	op_buf_addstr(&sb, "}\n  exec: []\n");
	orchd_diags_init(&d);
	ck_assert_int_eq(orchd_bootstrap_load("t.yaml", op_buf_str(&sb), sb.len, &p, &d), -1);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_uint_le(strlen(d.v[0].msg), ORCHD_DIAG_MAX_MSG);
	ck_assert_uint_ge(strlen(d.v[0].msg), ORCHD_DIAG_MAX_MSG - 1);
	ck_assert_str_eq(d.v[0].msg + strlen(d.v[0].msg) - 5, "\xc3\xa9...");
	ck_assert(!strncmp(d.v[0].msg, "p.core.engine.type: unknown engine type '", 41));
	orchd_diags_release(&d);
	orchd_pipeline_free(p);
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_file_size_limit)
{
	struct orchd_diags d;
	struct orchd_pipeline *p = (struct orchd_pipeline *)1;

	orchd_diags_init(&d);
	ck_assert_int_eq(
		orchd_bootstrap_load("big.yaml", "", (size_t)ORCHD_MAX_FILE_SIZE + 1, &p, &d), -1);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.v[0].msg, "file too large (16777217 bytes, limit 16 MiB)");
	orchd_diags_release(&d);
}
END_TEST

START_TEST(test_node_limit)
{
	/* 1,000,001 scalars in a flow sequence: "[0,0,...]" is 2 MB. */
	struct op_buf sb = OP_BUF_INIT;
	char *errs;
	int i;

	op_buf_addstr(&sb, "p: [");
	for (i = 0; i < ORCHD_MAX_NODES; i++)
		op_buf_addstr(&sb, "0,");
	op_buf_addstr(&sb, "0]\n");
	ck_assert_ptr_null(load(op_buf_str(&sb), &errs));
	ck_assert_str_eq(errs, "t.yaml:1:1999999: error: too many YAML nodes (limit 1000000)\n");
	free(errs);
	op_buf_release(&sb);
}
END_TEST

START_TEST(test_names_and_distance)
{
	ck_assert(orchd_name_is_safe("a"));
	ck_assert(orchd_name_is_safe("A0_.-z"));
	ck_assert(!orchd_name_is_safe(""));
	ck_assert(!orchd_name_is_safe("-a"));
	ck_assert(!orchd_name_is_safe(".a"));
	ck_assert(!orchd_name_is_safe("a..b"));
	ck_assert(!orchd_name_is_safe("a/b"));
	ck_assert(!orchd_name_is_safe("a b"));
	ck_assert(orchd_name_is_safe(
		"x23456789012345678901234567890123456789012345678901234567890123"));
	ck_assert(!orchd_name_is_safe(
		"x234567890123456789012345678901234567890123456789012345678901234"));
	ck_assert_uint_eq(orchd_edit_distance("paralelism", "parallelism"), 1);
	ck_assert_uint_eq(orchd_edit_distance("", "abc"), 3);
	ck_assert_uint_eq(orchd_edit_distance("kitten", "sitting"), 3);
}
END_TEST

START_TEST(test_topo_order_and_find)
{
	const char *yaml = "p:\n"
			   "  exec:\n"
			   "    - {name: d, depends_on: [c]}\n"
			   "    - {name: c, depends_on: [exec.a, b]}\n"
			   "    - {name: a}\n"
			   "    - {name: b}\n"
			   "  tf:\n"
			   "    - {name: a}\n";
	struct orchd_pipeline *p = load(yaml, NULL);
	struct orchd_graph g;
	size_t order[5];
	int amb;

	ck_assert_ptr_nonnull(p);
	orchd_graph_build(&g, p);
	ck_assert_int_eq(orchd_graph_order(&g, order), 0);
	orchd_graph_release(&g);
	ck_assert_uint_eq(order[0], 2);
	ck_assert_uint_eq(order[1], 3);
	ck_assert_uint_eq(order[2], 4);
	ck_assert_uint_eq(order[3], 1);
	ck_assert_uint_eq(order[4], 0);
	ck_assert_uint_eq(orchd_pipeline_find(p, "tf.a", &amb), 4);
	ck_assert_uint_eq(orchd_pipeline_find(p, "b", &amb), 3);
	ck_assert_int_eq(amb, 0);
	ck_assert_uint_eq(orchd_pipeline_find(p, "a", &amb), (size_t)-1);
	ck_assert_int_eq(amb, 1);
	ck_assert_uint_eq(orchd_pipeline_find(p, "zz", &amb), (size_t)-1);
	ck_assert_int_eq(amb, 0);
	/* The same answers without the index. */
	{
		struct orchd_pipeline_index *x = p->index;

		p->index = NULL;
		ck_assert_uint_eq(orchd_pipeline_find(p, "tf.a", &amb), 4);
		ck_assert_uint_eq(orchd_pipeline_find(p, "a", &amb), (size_t)-1);
		ck_assert_int_eq(amb, 1);
		p->index = x;
	}
	orchd_pipeline_free(p);
}
END_TEST

/* Random bytes and truncations of the examples: never a crash (run under
 * ASan by `make check SANITIZE=address,undefined`). */
START_TEST(test_fuzz_no_crash)
{
	static const char *const files[] = {"examples/hello/pipeline.yaml",
					    "examples/anchors.yaml"};
	unsigned seed = 12345;
	size_t f, i, len;
	char buf[512];

	for (f = 0; f < ARRAY_SIZE(files); f++) {
		char *path = test_src_path(files[f]);
		char *text = test_read_file(path, &len);

		ck_assert_ptr_nonnull(text);
		for (i = 0; i <= len; i += 3) {
			struct orchd_pipeline *p = NULL;
			struct orchd_diags d;

			orchd_diags_init(&d);
			if (!orchd_bootstrap_load("f.yaml", text, i, &p, &d) && p)
				orchd_pipeline_validate(p, NULL, 0, &d);
			orchd_pipeline_free(p);
			orchd_diags_release(&d);
		}
		/* Flip bytes of the example. */
		for (i = 0; i < 300; i++) {
			struct orchd_pipeline *p = NULL;
			struct orchd_diags d;
			char *copy = xstrndup(text, len);

			seed = seed * 1103515245 + 12345;
			copy[(seed >> 8) % len] = (char)(seed >> 16);
			orchd_diags_init(&d);
			if (!orchd_bootstrap_load("f.yaml", copy, len, &p, &d) && p)
				orchd_pipeline_validate(p, NULL, 0, &d);
			orchd_pipeline_free(p);
			orchd_diags_release(&d);
			free(copy);
		}
		free(text);
		free(path);
	}
	for (i = 0; i < 300; i++) {
		struct orchd_pipeline *p = NULL;
		struct orchd_diags d;
		size_t j, n;

		seed = seed * 1103515245 + 12345;
		n = (seed >> 8) % sizeof(buf);
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245 + 12345;
			/* Mostly YAML punctuation, to get past the first byte. */
			buf[j] = "p:\n -[]{}&*<>!|'\"#$ab,?\t"[(seed >> 16) % 24];
			if ((seed >> 28) == 0)
				buf[j] = (char)(seed >> 8);
		}
		orchd_diags_init(&d);
		if (!orchd_bootstrap_load("r.yaml", buf, n, &p, &d) && p)
			orchd_pipeline_validate(p, NULL, 0, &d);
		orchd_pipeline_free(p);
		orchd_diags_release(&d);
	}
}
END_TEST

/* ---- the corpus, through the real binary ---- */

static void fake_extension(const char *dir, const char *type)
{
	char *path = xasprintf("%s/orchd-ext-%s", dir, type);
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs("#!/bin/sh\nexit 0\n", fp);
	fclose(fp);
	ck_assert_int_eq(chmod(path, 0755), 0);
	free(path);
}

static char *fake_extensions(void)
{
	static const char *const types[] = {"exec", "terraform"};
	char *dir = test_tmpdir();
	size_t i;

	for (i = 0; i < ARRAY_SIZE(types); i++)
		fake_extension(dir, types[i]);
	return dir;
}

static int run_validate(const char *extdir, const char *file, char **out, char **err)
{
	char *argv[7];
	int code, i;

	/* the file only: the extensions here are stand-ins */
	argv[0] = test_build_path("bin/orchd");
	argv[1] = xstrdup("--extensions-dir");
	argv[2] = xstrdup(extdir);
	argv[3] = xstrdup("validate");
	argv[4] = xstrdup("--syntax-only");
	argv[5] = xstrdup(file);
	argv[6] = NULL;
	code = test_run(argv, out, err);
	for (i = 0; i < 6; i++)
		free(argv[i]);
	return code;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_invalid_corpus)
{
	char *src = test_src_path(""), *extdir = fake_extensions();
	char *names[256] = {NULL};
	size_t n = 0, i;
	DIR *dh;
	struct dirent *de;

	ck_assert_int_eq(chdir(src), 0);
	setenv("ORCHD_EXTENSIONS_PATH_ONLY", "1", 1);
	unsetenv("ORCHD_EXTENSIONS_PATH");
	dh = opendir("tests/configs/invalid");
	ck_assert_ptr_nonnull(dh);
	while ((de = readdir(dh)) && n < ARRAY_SIZE(names)) {
		size_t len = strlen(de->d_name);

		if (len > 5 && !strcmp(de->d_name + len - 5, ".yaml"))
			names[n++] = xstrndup(de->d_name, len - 5);
	}
	closedir(dh);
	qsort(names, n, sizeof(*names), cmp_names);
	ck_assert_uint_ge(n, 25);
	for (i = 0; i < n; i++) {
		char *file = xasprintf("tests/configs/invalid/%s.yaml", names[i]);
		char *errfile = xasprintf("tests/configs/invalid/%s.err", names[i]);
		char *want, *out = NULL, *err = NULL;
		size_t wlen;
		int code;

		want = test_read_file(errfile, &wlen);
		ck_assert_msg(want != NULL, "%s is missing", errfile);
		code = run_validate(extdir, file, &out, &err);
		ck_assert_msg(code == 2, "%s: exit %d, want 2", file, code);
		ck_assert_msg(!strcmp(err, want), "%s: stderr differs\n--- got:\n%s--- want:\n%s",
			      file, err, want);
		ck_assert_str_eq(out, "");
		free(want);
		free(out);
		free(err);
		free(file);
		free(errfile);
		free(names[i]);
	}
	test_rmtree(extdir);
	free(extdir);
	free(src);
}
END_TEST

START_TEST(test_valid_examples)
{
	char *src = test_src_path(""), *extdir = fake_extensions();
	DIR *dh;
	struct dirent *de;
	size_t checked = 0;

	/* examples may use every shipped type; the invalid corpus's
	 * "known types" lists stay those of fake_extensions() */
	fake_extension(extdir, "secrets");
	fake_extension(extdir, "ansible");
	fake_extension(extdir, "kubectl");
	fake_extension(extdir, "helm");
	ck_assert_int_eq(chdir(src), 0);
	setenv("ORCHD_EXTENSIONS_PATH_ONLY", "1", 1);
	unsetenv("ORCHD_EXTENSIONS_PATH");
	dh = opendir("examples");
	ck_assert_ptr_nonnull(dh);
	while ((de = readdir(dh))) {
		size_t len = strlen(de->d_name);
		char *file = NULL, *out = NULL, *err = NULL, *want;
		struct stat st;
		int code;

		if (de->d_name[0] == '.')
			continue;
		if (len > 5 && !strcmp(de->d_name + len - 5, ".yaml"))
			file = xasprintf("examples/%s", de->d_name);
		else
			file = xasprintf("examples/%s/pipeline.yaml", de->d_name);
		if (stat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(file);
			continue;
		}
		/* examples/extensions/ use their own types: not ours to check. */
		code = run_validate(extdir, file, &out, &err);
		ck_assert_msg(code == 0, "%s: exit %d: %s", file, code, err);
		want = xasprintf("%s: ok (", file);
		ck_assert_msg(!strncmp(out, want, strlen(want)), "%s: %s", file, out);
		ck_assert_str_eq(err, "");
		checked++;
		free(want);
		free(out);
		free(err);
		free(file);
	}
	closedir(dh);
	ck_assert_uint_ge(checked, 2);
	test_rmtree(extdir);
	free(extdir);
	free(src);
}
END_TEST

Suite *bootstrap_suite(void)
{
	Suite *s = suite_create("bootstrap");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_model_basic);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_exec_merge_and_config_merge);
	tcase_add_test(tc, test_config_text_round_trip);
	tcase_add_test(tc, test_refs);
	tcase_add_test(tc, test_ref_parse_unterminated_not_nul_terminated);
	tcase_add_test(tc, test_anchors_aliases_merge_keys);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_top_level_shapes);
	tcase_add_test(tc, test_long_message_cut);
	tcase_add_test(tc, test_file_size_limit);
	tcase_add_test(tc, test_node_limit);
	tcase_add_test(tc, test_names_and_distance);
	tcase_add_test(tc, test_topo_order_and_find);
	tcase_add_test(tc, test_fuzz_no_crash);
	tcase_add_test(tc, test_invalid_corpus);
	tcase_add_test(tc, test_valid_examples);
	suite_add_tcase(s, tc);
	return s;
}
