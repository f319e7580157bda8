/*
 * orchd: the command-line interface.
 *
 * Subcommands are one table (struct command): name, handler, one-line
 * synopsis and help text.  Each handler parses its own options with
 * getopt_long; the global options (--extensions-dir, -h) are accepted
 * before the subcommand and by every subcommand.  Adding a subcommand is
 * one function and one table entry.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "core/bootstrap.h"
#include "core/affected.h"
#include "core/doctor.h"
#include "core/exttest.h"
#include "core/extpkg.h"
#include "core/extnew.h"
#include "core/graph.h"
#include "core/loader.h"
#include "core/inspect.h"
#include "crypto.h"
#include "core/orchestrator.h"
#include "core/report.h"
#include "orchd_protocol.h"
#include "util.h"

struct cli {
	const char **ext_dirs; /* --extensions-dir, in order */
	size_t next_dirs, ext_alloc;
	const char *env;     /* --env, else $ORCHD_ENV */
	const char *explain; /* validate --explain */
};

struct command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *synopsis;
	const char *help;
};

static const struct command *find_command(const char *name);
static void print_usage(FILE *fp);

#define EXIT_CODES_HELP                         \
	"Exit status:\n"                        \
	"  0    success\n"                      \
	"  1    a step (instance) failed\n"     \
	"  2    usage or configuration error\n" \
	"  3    system or state error\n"        \
	"  130  interrupted by SIGINT\n"        \
	"  143  interrupted by SIGTERM\n"

#define OPT_EXT_DIR 1000
#define OPT_ENV	    1001

static void add_ext_dir(struct cli *cli, const char *dir)
{
	ALLOC_GROW(cli->ext_dirs, cli->next_dirs + 1, cli->ext_alloc);
	cli->ext_dirs[cli->next_dirs++] = dir;
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", get_progname());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "\nTry 'orchd %s --help'.\n", cmd);
	else
		fprintf(stderr, "\nTry 'orchd --help'.\n");
	return ORCHD_EXIT_USAGE;
}

static void print_command_help(const struct command *c, FILE *fp)
{
	fprintf(fp, "usage: orchd %s\n\n%s\n%s", c->synopsis, c->help,
		"Global options:\n"
		"  --extensions-dir DIR  search DIR for extensions first (repeatable)\n"
		"  --env NAME            apply core.environments.NAME (default: $ORCHD_ENV)\n"
		"  -h, --help            show this help\n\n" EXIT_CODES_HELP);
}

/*
 * getopt_long over a subcommand's arguments with the global options added.
 * extra: the command's own options (may be NULL); handle() gets their
 * values.  Returns the index of the first operand, or -1 after a usage
 * error was printed (*code set), or -2 when --help was shown.
 */
static int parse_opts(struct cli *cli, const struct command *c, int argc, char **argv,
		      const struct option *extra,
		      int (*handle)(int opt, const char *arg, void *ctx), void *ctx, int *code)
{
	struct option opts[40];
	char shorts[64] = ":h"; /* ':' first: a missing value is ':', not '?' */
	size_t n = 0, ns = 2;
	int opt;

	opts[n++] = (struct option){"extensions-dir", required_argument, NULL, OPT_EXT_DIR};
	opts[n++] = (struct option){"env", required_argument, NULL, OPT_ENV};
	opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	/* Options whose value is a letter have that short form too. */
	for (; extra && extra->name && n < ARRAY_SIZE(opts) - 1; extra++) {
		if (extra->val > 0 && extra->val < 128 && ns + 3 < sizeof(shorts)) {
			shorts[ns++] = (char)extra->val;
			if (extra->has_arg == required_argument)
				shorts[ns++] = ':';
			shorts[ns] = '\0';
		}
		opts[n++] = *extra;
	}
	opts[n] = (struct option){NULL, 0, NULL, 0};
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			print_command_help(c, stdout);
			*code = ORCHD_EXIT_OK;
			return -2;
		case OPT_EXT_DIR:
			add_ext_dir(cli, optarg);
			break;
		case OPT_ENV:
			cli->env = optarg;
			break;
		case '?':
			if (optopt)
				*code = usage_error(c->name, "unknown option '-%c'", optopt);
			else
				*code = usage_error(c->name, "unknown option '%s'",
						    argv[optind - 1]);
			return -1;
		case ':':
			*code = usage_error(c->name, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			if (!handle || handle(opt, optarg, ctx) < 0) {
				*code = ORCHD_EXIT_USAGE;
				return -1;
			}
			break;
		}
	}
	return optind;
}

/* The environment to apply: --env, else $ORCHD_ENV, else none. */
static const char *cli_env(const struct cli *cli)
{
	const char *e = cli->env ? cli->env : getenv("ORCHD_ENV");

	return e && *e ? e : NULL;
}

/*
 * Load, discover extensions and validate: the common front of validate,
 * graph and run.  Returns the pipeline, or NULL with the diagnostics
 * printed and *code set.
 */
static struct orchd_pipeline *load_pipeline_reg(struct cli *cli, const char *file, int *code,
						struct orchd_registry *keep)
{
	struct orchd_diags d;
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct orchd_pipeline *p = NULL;
	struct op_buf err = OP_BUF_INIT, explained = OP_BUF_INIT;
	struct orchd_load_opts lo;
	const char **types;
	size_t ntypes;
	int ret;

	orchd_diags_init(&d);
	memset(&lo, 0, sizeof(lo));
	lo.env = cli_env(cli);
	lo.explain = cli->explain;
	lo.explain_out = cli->explain ? &explained : NULL;
	ret = orchd_bootstrap_load_opts(file, &lo, &p, &d);
	if (p) {
		if (orchd_loader_discover(&reg, cli->ext_dirs, cli->next_dirs, 0, &err) < 0)
			warning("%s", orchd_buf_str(&err));
		types = orchd_loader_types(&reg, &ntypes);
		/* the packages first: a declared type not installed is better
		 * told with how to install it than as an unknown type */
		if (orchd_extpkg_check(p, &reg, &d) < 0 ||
		    orchd_pipeline_validate(p, types, ntypes, &d) < 0)
			ret = -1;
		free(types);
		if (keep && ret >= 0)
			*keep = reg;
		else
			orchd_loader_release(&reg);
	}
	op_buf_release(&err);
	if (ret < 0) {
		op_buf_release(&explained);
		orchd_diags_print(&d, stderr);
		orchd_diags_release(&d);
		orchd_pipeline_free(p);
		*code = ORCHD_EXIT_USAGE;
		return NULL;
	}
	orchd_diags_release(&d);
	if (explained.len)
		fwrite(orchd_buf_str(&explained), 1, explained.len, stdout);
	op_buf_release(&explained);
	return p;
}

static struct orchd_pipeline *load_pipeline(struct cli *cli, const char *file, int *code)
{
	return load_pipeline_reg(cli, file, code, NULL);
}

/* One operand, the pipeline file. */
static const char *one_file(const struct command *c, int argc, char **argv, int first, int *code)
{
	if (first >= argc) {
		*code = usage_error(c->name, "missing pipeline file");
		return NULL;
	}
	if (first + 1 < argc) {
		*code = usage_error(c->name, "unexpected argument '%s'", argv[first + 1]);
		return NULL;
	}
	return argv[first];
}

enum graph_format { GRAPH_DOT, GRAPH_MERMAID, GRAPH_JSON };

static int graph_opt(int opt, const char *arg, void *ctx)
{
	enum graph_format *f = ctx;

	if (opt != 'f')
		return -1;
	if (!strcmp(arg, "dot"))
		*f = GRAPH_DOT;
	else if (!strcmp(arg, "mermaid"))
		*f = GRAPH_MERMAID;
	else if (!strcmp(arg, "json"))
		*f = GRAPH_JSON;
	else
		return usage_error("graph", "unknown format '%s' (expected dot, mermaid or json)",
				   arg)
			       ? -1
			       : -1;
	return 0;
}

/* A string as a double-quoted DOT/Mermaid label (names are safe already). */
static void put_quoted(struct op_buf *sb, const char *s)
{
	op_buf_addch(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			op_buf_addch(sb, '\\');
		op_buf_addch(sb, *s);
	}
	op_buf_addch(sb, '"');
}

static void graph_dot(const struct orchd_pipeline *p, struct op_buf *sb)
{
	size_t i, j;

	op_buf_addstr(sb, "digraph ");
	put_quoted(sb, p->name);
	op_buf_addstr(sb, " {\n\trankdir=LR;\n");
	for (i = 0; i < p->ninst; i++) {
		op_buf_addch(sb, '\t');
		put_quoted(sb, p->inst[i].id);
		op_buf_addstr(sb, p->inst[i].enabled ? ";\n" : " [style=dashed];\n");
	}
	for (i = 0; i < p->ninst; i++)
		for (j = 0; j < p->inst[i].ndeps; j++) {
			op_buf_addch(sb, '\t');
			put_quoted(sb, p->inst[p->inst[i].deps[j]].id);
			op_buf_addstr(sb, " -> ");
			put_quoted(sb, p->inst[i].id);
			op_buf_addstr(sb, ";\n");
		}
	op_buf_addstr(sb, "}\n");
}

static void graph_mermaid(const struct orchd_pipeline *p, struct op_buf *sb)
{
	size_t i, j;

	op_buf_addstr(sb, "flowchart LR\n");
	for (i = 0; i < p->ninst; i++) {
		op_buf_addf(sb, "\tn%zu[", i);
		put_quoted(sb, p->inst[i].id);
		op_buf_addstr(sb, "]\n");
		if (!p->inst[i].enabled)
			op_buf_addf(sb, "\tstyle n%zu stroke-dasharray: 5 5\n", i);
	}
	for (i = 0; i < p->ninst; i++)
		for (j = 0; j < p->inst[i].ndeps; j++)
			op_buf_addf(sb, "\tn%zu --> n%zu\n", p->inst[i].deps[j], i);
}

/* A JSON string (names are from the safe set, but escape anyway). */
static void put_json_str(struct op_buf *sb, const char *s)
{
	orchd_buf_json_str(sb, s, strlen(s));
}

/*
 * Written directly rather than through json-c objects: at 10 000 instances
 * the object tree would double the memory of the whole command.
 */
static void graph_json(const struct orchd_pipeline *p, const size_t *order, struct op_buf *sb)
{
	size_t i, j;

	op_buf_addstr(sb, "{\"pipeline\":");
	put_json_str(sb, p->name);
	op_buf_addstr(sb, ",\"instances\":[");
	for (i = 0; i < p->ninst; i++) {
		const struct orchd_instance *in = &p->inst[i];

		op_buf_addstr(sb, i ? ",{\"id\":" : "{\"id\":");
		put_json_str(sb, in->id);
		op_buf_addstr(sb, ",\"type\":");
		put_json_str(sb, in->type);
		op_buf_addstr(sb, ",\"name\":");
		put_json_str(sb, in->name);
		op_buf_addstr(sb, ",\"deps\":[");
		for (j = 0; j < in->ndeps; j++) {
			if (j)
				op_buf_addch(sb, ',');
			put_json_str(sb, p->inst[in->deps[j]].id);
		}
		op_buf_addstr(sb, in->enabled ? "],\"enabled\":true}" : "],\"enabled\":false}");
	}
	op_buf_addstr(sb, "],\"order\":[");
	for (i = 0; i < p->ninst; i++) {
		if (i)
			op_buf_addch(sb, ',');
		put_json_str(sb, p->inst[order[i]].id);
	}
	op_buf_addstr(sb, "]}\n");
}

static int cmd_graph(struct cli *cli, int argc, char **argv)
{
	struct orchd_graph g;
	static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
					     {NULL, 0, NULL, 0}};
	const struct command *c = find_command("graph");
	enum graph_format fmt = GRAPH_DOT;
	struct orchd_pipeline *p;
	struct op_buf out = OP_BUF_INIT;
	const char *file;
	size_t *order;
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, opts, graph_opt, &fmt, &code)) < 0)
		return code;
	if (!(file = one_file(c, argc, argv, first, &code)))
		return code;
	if (!(p = load_pipeline(cli, file, &code)))
		return code;
	order = xcalloc(p->ninst + 1, sizeof(*order));
	orchd_graph_build(&g, p);
	if (orchd_graph_order(&g, order) < 0)
		die("internal error: cycle after validation"); /* validate reports cycles */
	orchd_graph_release(&g);
	if (fmt == GRAPH_DOT)
		graph_dot(p, &out);
	else if (fmt == GRAPH_MERMAID)
		graph_mermaid(p, &out);
	else
		graph_json(p, order, &out);
	fwrite(orchd_buf_str(&out), 1, out.len, stdout);
	op_buf_release(&out);
	free(order);
	orchd_pipeline_free(p);
	if (fflush(stdout) != 0) {
		error("cannot write the graph: %s", strerror(errno));
		return ORCHD_EXIT_SYSTEM;
	}
	return ORCHD_EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * run, plan, destroy: one option set, one scheduler (core/orchestrator).
 * ------------------------------------------------------------------------- */

enum {
	OPT_KEEP_WORKDIR = 2000,
	OPT_WITH_DEPS,
	OPT_ONLY_STALE,
	OPT_ONLY_FAILED,
	OPT_STATE_DIR,
	OPT_LOCK_TIMEOUT,
	OPT_REPORT,
	OPT_JUNIT,
	OPT_TRACE,
	OPT_METRICS,
	OPT_REPORT_HTML,
	OPT_LOG_FORMAT,
	OPT_OUTPUT,
	OPT_DETAILED,
	OPT_JSON,
	OPT_SHOW_SECRETS,
	OPT_LIMIT,
	OPT_SYNTAX_ONLY,
	OPT_EXPLAIN,
	OPT_SINCE,
	OPT_WORKERS,
	OPT_FORMAT,
	OPT_CONFIG,
	OPT_JUNIT_EXT,
	OPT_GRACE,
	OPT_LANG,
	OPT_DIR,
	OPT_SYSTEM,
	OPT_SHA256,
	OPT_PKG_PATH,
	OPT_PIPELINE,
	OPT_FROM,
	OPT_FROZEN,
};

struct run_ctx {
	struct orchd_run_opts o;
	const char **targets, **excludes;
	size_t ntargets, nexcludes, talloc, xalloc;
	int json, show_secrets, syntax_only;
	long limit;
	const char *explain;
	const char *since; /* --since REF */
	int json_format;   /* affected --format json */
};

/* Durations on the command line: as in the pipeline file ("30s", "5m", 90). */
static int parse_cli_duration(const char *opt, const char *arg, long *ms)
{
	int64_t v;

	if (orchd_parse_duration(arg, &v) < 0 || v < 0 || v > (int64_t)LONG_MAX)
		return usage_error(NULL, "%s: invalid duration '%s' (e.g. 90, 30s, 5m, 1h)", opt,
				   arg)
			       ? -1
			       : -1;
	*ms = (long)v;
	return 0;
}

/* A report option (of run, plan, destroy or report) into its path. */
static int report_path_opt(struct orchd_report_paths *p, int opt, const char *arg)
{
	switch (opt) {
	case OPT_REPORT:
		p->report = arg;
		return 0;
	case OPT_JUNIT:
		p->junit = arg;
		return 0;
	case OPT_TRACE:
		p->trace = arg;
		return 0;
	case OPT_METRICS:
		p->metrics = arg;
		return 0;
	case OPT_REPORT_HTML:
		p->html = arg;
		return 0;
	}
	return -1;
}

static int run_opt(int opt, const char *arg, void *ctx)
{
	struct run_ctx *r = ctx;
	char *end;

	switch (opt) {
	case 'j': {
		long n = strtol(arg, &end, 10);

		if (*end || n < 1 || n > 4096)
			return usage_error(NULL, "--parallelism: expected 1..4096, got '%s'", arg)
				       ? -1
				       : -1;
		r->o.parallelism = (int)n;
		return 0;
	}
	case 'k':
		r->o.keep_going = 1;
		return 0;
	case OPT_KEEP_WORKDIR:
		r->o.keep_workdir = 1;
		return 0;
	case 't':
		ALLOC_GROW(r->targets, r->ntargets + 1, r->talloc);
		r->targets[r->ntargets++] = arg;
		return 0;
	case 'x':
		ALLOC_GROW(r->excludes, r->nexcludes + 1, r->xalloc);
		r->excludes[r->nexcludes++] = arg;
		return 0;
	case OPT_WITH_DEPS:
		r->o.with_deps = 1;
		return 0;
	case OPT_ONLY_STALE:
		r->o.only_stale = 1;
		return 0;
	case OPT_ONLY_FAILED:
		r->o.only_failed = 1;
		return 0;
	case OPT_STATE_DIR:
		r->o.state_dir = arg;
		return 0;
	case OPT_LOCK_TIMEOUT:
		return parse_cli_duration("--lock-timeout", arg, &r->o.lock_timeout_ms);
	case OPT_REPORT:
	case OPT_JUNIT:
	case OPT_TRACE:
	case OPT_METRICS:
	case OPT_REPORT_HTML:
		return report_path_opt(&r->o.reports, opt, arg);
	case OPT_LOG_FORMAT:
		if (!strcmp(arg, "json"))
			r->o.log_json = 1;
		else if (strcmp(arg, "text"))
			return usage_error(NULL, "--log-format: expected text or json, got '%s'",
					   arg)
				       ? -1
				       : -1;
		return 0;
	case OPT_OUTPUT:
		if (!strcmp(arg, "grouped"))
			r->o.output = ORCHD_OUTPUT_GROUPED;
		else if (strcmp(arg, "stream"))
			return usage_error(NULL, "--output: expected stream or grouped, got '%s'",
					   arg)
				       ? -1
				       : -1;
		return 0;
	case 'q':
		r->o.quiet = 1;
		return 0;
	case 'v':
		r->o.verbose = 1;
		return 0;
	case OPT_DETAILED:
		r->o.detailed_exitcode = 1;
		return 0;
	case OPT_JSON:
		r->json = 1;
		return 0;
	case OPT_SHOW_SECRETS:
		r->show_secrets = 1;
		return 0;
	case OPT_EXPLAIN:
		r->explain = arg;
		return 0;
	case OPT_SINCE:
		r->since = arg;
		return 0;
	case OPT_WORKERS:
		r->o.workers = 1;
		return 0;
	case OPT_FORMAT:
		if (strcmp(arg, "text") && strcmp(arg, "json"))
			return usage_error(NULL, "--format: expected text or json, got '%s'", arg)
				       ? -1
				       : -1;
		r->json_format = !strcmp(arg, "json");
		return 0;
	case OPT_SYNTAX_ONLY:
		r->syntax_only = 1;
		return 0;
	case OPT_LIMIT:
		r->limit = strtol(arg, &end, 10);
		if (*end || r->limit < 1)
			return usage_error(NULL, "--limit: expected a positive number, got '%s'",
					   arg)
				       ? -1
				       : -1;
		return 0;
	}
	return -1;
}

static const struct option run_options[] = {
	{"parallelism", required_argument, NULL, 'j'},
	{"keep-going", no_argument, NULL, 'k'},
	{"keep-workdir", no_argument, NULL, OPT_KEEP_WORKDIR},
	{"target", required_argument, NULL, 't'},
	{"with-deps", no_argument, NULL, OPT_WITH_DEPS},
	{"exclude", required_argument, NULL, 'x'},
	{"only-stale", no_argument, NULL, OPT_ONLY_STALE},
	{"only-failed", no_argument, NULL, OPT_ONLY_FAILED},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT},
	{"report", required_argument, NULL, OPT_REPORT},
	{"junit", required_argument, NULL, OPT_JUNIT},
	{"trace", required_argument, NULL, OPT_TRACE},
	{"metrics", required_argument, NULL, OPT_METRICS},
	{"report-html", required_argument, NULL, OPT_REPORT_HTML},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"output", required_argument, NULL, OPT_OUTPUT},
	{"quiet", no_argument, NULL, 'q'},
	{"verbose", no_argument, NULL, 'v'},
	{"detailed-exitcode", no_argument, NULL, OPT_DETAILED},
	{"since", required_argument, NULL, OPT_SINCE},
	{"workers", no_argument, NULL, OPT_WORKERS},
	{NULL, 0, NULL, 0},
};

#define RUN_OPTIONS_HELP                                                                    \
	"  -j, --parallelism N      run at most N instances at once (default:\n"            \
	"                           core.parallelism, else the number of CPUs)\n"           \
	"  -k, --keep-going         after a failure, keep running independent branches\n"   \
	"                           (default: fail fast, start nothing new)\n"              \
	"  -t, --target ID          only this instance, TYPE.NAME or NAME (repeatable)\n"   \
	"  -x, --exclude ID         leave this instance out (repeatable)\n"                 \
	"      --workers            run the steps on `orchd worker`s (core.execution.\n"    \
	"                           workers; needs the etcd engine); validate runs here\n"  \
	"      --since REF          only the instances a change since the git revision\n"   \
	"                           REF affects (see orchd affected)\n"                     \
	"      --state-dir DIR      state directory (default: core.state_dir, else\n"       \
	"                           .orchd beside the pipeline file)\n"                     \
	"      --lock-timeout DUR   wait this long for another run of the same pipeline\n"  \
	"                           (default 5m; 0: fail at once)\n"                        \
	"      --keep-workdir       keep each instance's private working directory\n"       \
	"      --report FILE        write the JSON report to FILE\n"                        \
	"      --junit FILE         write a JUnit XML report to FILE (Surefire's format,\n" \
	"                           as Jenkins' junit step reads it)\n"                     \
	"      --trace FILE         write a Chrome trace-event file (Perfetto): each\n"     \
	"                           instance's phases on a timeline\n"                      \
	"      --metrics FILE       write the run's figures in the Prometheus text\n"       \
	"                           format (node_exporter's textfile collector)\n"          \
	"      --report-html FILE   write one self-contained HTML page: summary,\n"         \
	"                           timeline, dependency graph, outputs, logs\n"            \
	"      --log-format FMT     text (default) or json (one object per line)\n"         \
	"      --output MODE        stream (default) or grouped (each instance's lines\n"   \
	"                           as one block when it ends)\n"                           \
	"  -q, --quiet              only warnings and errors\n"                             \
	"  -v, --verbose            debug lines too\n"

/* Run the parsed command (its targets, excludes and command line). */
static int orchestrate(struct run_ctx *r, struct orchd_pipeline *p,
		       const struct orchd_registry *reg, int argc, char **argv)
{
	r->o.targets = r->targets;
	r->o.ntargets = r->ntargets;
	r->o.excludes = r->excludes;
	r->o.nexcludes = r->nexcludes;
	r->o.argc = argc;
	r->o.argv = argv;
	return orchd_orchestrate(p, reg, &r->o);
}

/* Notes and instances to destroy of an affected computation, on stderr. */
static void affected_notes(const struct orchd_affected *a, const char *since)
{
	for (size_t i = 0; i < a->nnotes; i++)
		fprintf(stderr, "%s: note: %s\n", get_progname(), a->notes[i]);
	for (size_t i = 0; i < a->ngone; i++)
		fprintf(stderr,
			"%s: to destroy: %s (gone since %s; orchd never destroys it by itself)\n",
			get_progname(), a->gone[i], since);
}

/*
 * --since: the affected instances become the targets.  1: go on, 0:
 * nothing is affected (*code 0), -1: an error (*code set, printed).
 */
static int since_targets(struct cli *cli, struct run_ctx *r, const char *file,
			 const struct orchd_pipeline *p, const struct orchd_registry *reg,
			 int *code)
{
	struct orchd_affected a;
	char err[1024];

	if (orchd_affected(file, p, reg, cli_env(cli), r->since, &a, err, sizeof(err)) < 0) {
		error("%s", err);
		*code = ORCHD_EXIT_USAGE;
		return -1;
	}
	affected_notes(&a, r->since);
	if (!a.naffected) {
		fprintf(stderr, "%s: nothing affected since %s (%.12s)\n", get_progname(), r->since,
			a.commit);
		orchd_affected_release(&a);
		*code = ORCHD_EXIT_OK;
		return 0;
	}
	for (size_t i = 0; i < a.ninst; i++)
		if (a.why[i]) {
			ALLOC_GROW(r->targets, r->ntargets + 1, r->talloc);
			r->targets[r->ntargets++] = p->inst[i].id;
		}
	orchd_affected_release(&a);
	return 1;
}

static int run_like(struct cli *cli, const char *name, enum orchd_verb verb, int argc, char **argv)
{
	const struct command *c = find_command(name);
	struct run_ctx r;
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct orchd_pipeline *p;
	const char *file;
	int code = 0, first;

	memset(&r, 0, sizeof(r));
	r.o.verb = verb;
	r.o.lock_timeout_ms = 5 * 60 * 1000;
	if ((first = parse_opts(cli, c, argc, argv, run_options, run_opt, &r, &code)) < 0)
		goto out;
	if (verb != ORCHD_VERB_RUN && (r.o.only_stale || r.o.only_failed)) {
		code = usage_error(name, "--only-stale and --only-failed are options of run");
		goto out;
	}
	if (r.since && (verb == ORCHD_VERB_DESTROY || r.ntargets)) {
		code = usage_error(name,
				   verb == ORCHD_VERB_DESTROY
					   ? "--since is an option of run and plan"
					   : "--since selects the instances: not with --target");
		goto out;
	}
	if (verb != ORCHD_VERB_PLAN && r.o.detailed_exitcode) {
		code = usage_error(name, "--detailed-exitcode is an option of plan");
		goto out;
	}
	if (!(file = one_file(c, argc, argv, first, &code)))
		goto out;
	if (!(p = load_pipeline_reg(cli, file, &code, &reg)))
		goto out;
	if (r.since && since_targets(cli, &r, file, p, &reg, &code) <= 0) {
		/* an error, or nothing to do */
		orchd_pipeline_free(p);
		orchd_loader_release(&reg);
		goto out;
	}
	code = orchestrate(&r, p, &reg, argc, argv);
	orchd_pipeline_free(p);
	orchd_loader_release(&reg);
out:
	free(r.targets);
	free(r.excludes);
	return code;
}

static int cmd_run(struct cli *cli, int argc, char **argv)
{
	return run_like(cli, "run", ORCHD_VERB_RUN, argc, argv);
}

static int cmd_plan(struct cli *cli, int argc, char **argv)
{
	return run_like(cli, "plan", ORCHD_VERB_PLAN, argc, argv);
}

static int cmd_destroy(struct cli *cli, int argc, char **argv)
{
	return run_like(cli, "destroy", ORCHD_VERB_DESTROY, argc, argv);
}

struct ext_test_ctx {
	struct orchd_exttest_opts o;
	const char *lang, *dir;	      /* ext new */
	struct orchd_extpkg_opts pkg; /* install, list, remove, upgrade */
	const char *from;
};

static int ext_test_opt(int opt, const char *arg, void *ctx)
{
	struct ext_test_ctx *x = ctx;
	int64_t ms;

	switch (opt) {
	case OPT_CONFIG:
		x->o.config = arg;
		return 0;
	case OPT_JUNIT_EXT:
		x->o.junit = arg;
		return 0;
	case OPT_LANG:
		x->lang = arg;
		return 0;
	case OPT_DIR:
		x->dir = x->pkg.dir = arg;
		return 0;
	case OPT_SYSTEM:
		x->pkg.system = 1;
		return 0;
	case OPT_SHA256:
		x->pkg.sha256 = arg;
		return 0;
	case OPT_PKG_PATH:
		x->pkg.path = arg;
		return 0;
	case OPT_PIPELINE:
		x->pkg.pipeline = arg;
		return 0;
	case OPT_FROM:
		x->from = arg;
		return 0;
	case OPT_FROZEN:
		x->pkg.frozen = 1;
		return 0;
	case OPT_GRACE:
		if (orchd_parse_duration(arg, &ms) < 0 || ms < 1000 || ms > 600000)
			return usage_error("ext",
					   "--grace: expected a duration from 1s to 10m, got '%s'",
					   arg)
				       ? -1
				       : -1;
		x->o.grace_ms = (long)ms;
		return 0;
	case 'v':
		x->o.verbose = 1;
		return 0;
	default:
		return -1;
	}
}

/* ext install | list | remove | upgrade (core/extpkg.h); argv[0] is the
 * subcommand. */
static int cmd_ext_pkg(struct cli *cli, const struct command *c, int argc, char **argv,
		       struct ext_test_ctx *x)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"system", no_argument, NULL, OPT_SYSTEM},
		{"sha256", required_argument, NULL, OPT_SHA256},
		{"path", required_argument, NULL, OPT_PKG_PATH},
		{"pipeline", required_argument, NULL, OPT_PIPELINE},
		{"from", required_argument, NULL, OPT_FROM},
		{"frozen", no_argument, NULL, OPT_FROZEN},
		{NULL, 0, NULL, 0},
	};
	const char *sub = argv[0];
	int code = 0, first, nargs;
	char **args;

	if ((first = parse_opts(cli, c, argc, argv, opts, ext_test_opt, x, &code)) < 0)
		return code;
	args = argv + first;
	nargs = argc - first;
	if (x->pkg.dir && x->pkg.system)
		return usage_error("ext", "--dir and --system exclude each other");
	if (strcmp(sub, "install") && (x->pkg.sha256 || x->from || x->pkg.frozen))
		return usage_error("ext",
				   "--sha256, --from and --frozen are options of ext install");
	if (!strcmp(sub, "list")) {
		if (nargs)
			return usage_error("ext", "unexpected argument '%s'", args[0]);
		return orchd_extpkg_list(&x->pkg);
	}
	if (!strcmp(sub, "remove")) {
		if (nargs != 1)
			return usage_error("ext",
					   nargs ? "unexpected argument '%s'"
						 : "missing the type (orchd ext remove TYPE)",
					   nargs ? args[1] : "");
		return orchd_extpkg_remove(args[0], &x->pkg);
	}
	if (!strcmp(sub, "upgrade")) {
		if (nargs < 1 || nargs > 2)
			return usage_error("ext",
					   nargs ? "unexpected argument '%s'"
						 : "missing the type (orchd ext upgrade TYPE "
						   "[SOURCE])",
					   nargs ? args[2] : "");
		return orchd_extpkg_upgrade(args[0], nargs > 1 ? args[1] : NULL, &x->pkg);
	}
	if (x->from) {
		struct orchd_pipeline *p;
		struct orchd_diags d;
		struct orchd_load_opts lo;
		int ret;

		if (nargs)
			return usage_error("ext",
					   "--from installs what the pipeline declares: no "
					   "SOURCE ('%s')",
					   args[0]);
		if (x->pkg.sha256 || x->pkg.path || x->pkg.pipeline)
			return usage_error("ext", "--from takes no --sha256, --path or --pipeline");
		orchd_diags_init(&d);
		memset(&lo, 0, sizeof(lo));
		lo.env = cli_env(cli);
		ret = orchd_bootstrap_load_opts(x->from, &lo, &p, &d);
		if (ret < 0 || !p) {
			orchd_diags_print(&d, stderr);
			orchd_diags_release(&d);
			orchd_pipeline_free(p);
			return ORCHD_EXIT_USAGE;
		}
		orchd_diags_release(&d);
		code = orchd_extpkg_install_from(p, &x->pkg);
		orchd_pipeline_free(p);
		return code;
	}
	if (x->pkg.frozen)
		return usage_error("ext", "--frozen goes with --from PIPELINE");
	if (nargs != 1)
		return usage_error("ext",
				   nargs ? "unexpected argument '%s'"
					 : "missing the source (orchd ext install SOURCE, or "
					   "--from PIPELINE)",
				   nargs ? args[1] : "");
	return orchd_extpkg_install(args[0], &x->pkg);
}

/* ext test: the conformance runner (core/exttest.h). */
static int cmd_ext(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, OPT_CONFIG},
		{"junit", required_argument, NULL, OPT_JUNIT_EXT},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("ext");
	struct ext_test_ctx x;
	int code = 0, first, rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		if (argc < 2)
			return usage_error("ext", "missing subcommand (test)");
		print_command_help(c, stdout);
		return ORCHD_EXIT_OK;
	}
	memset(&x, 0, sizeof(x));
	if (!strcmp(argv[1], "new")) {
		static const struct option nopts[] = {
			{"lang", required_argument, NULL, OPT_LANG},
			{"dir", required_argument, NULL, OPT_DIR},
			{NULL, 0, NULL, 0},
		};

		if ((first = parse_opts(cli, c, argc - 1, argv + 1, nopts, ext_test_opt, &x,
					&code)) < 0)
			return code;
		if (first >= argc - 1)
			return usage_error("ext",
					   "missing the extension's name (orchd ext new NAME "
					   "--lang c|python|go|sh)");
		if (first + 1 < argc - 1)
			return usage_error("ext", "unexpected argument '%s'", argv[1 + first + 1]);
		if (!x.lang)
			return usage_error("ext", "--lang is required (c, python, go or sh)");
		return orchd_extnew(argv[1 + first], x.lang, x.dir, stdout, stderr) < 0
			       ? ORCHD_EXIT_USAGE
			       : ORCHD_EXIT_OK;
	}
	if (!strcmp(argv[1], "install") || !strcmp(argv[1], "list") || !strcmp(argv[1], "remove") ||
	    !strcmp(argv[1], "upgrade"))
		return cmd_ext_pkg(cli, c, argc - 1, argv + 1, &x);
	if (strcmp(argv[1], "test"))
		return usage_error("ext",
				   "unknown subcommand '%s' (orchd ext new, test, install, list, "
				   "remove, upgrade)",
				   argv[1]);
	if ((first = parse_opts(cli, c, argc - 1, argv + 1, opts, ext_test_opt, &x, &code)) < 0)
		return code;
	if (first >= argc - 1)
		return usage_error("ext", "missing the extension (an orchd-ext-TYPE executable or "
					  "its directory)");
	if (first + 1 < argc - 1)
		return usage_error("ext", "unexpected argument '%s'", argv[1 + first + 1]);
	x.o.path = argv[1 + first];
	rc = orchd_exttest_run(&x.o, stdout, stderr);
	return rc < 0 ? ORCHD_EXIT_USAGE : rc ? ORCHD_EXIT_FAILED : ORCHD_EXIT_OK;
}

/* affected: which instances the changes since a git revision touch. */
static int cmd_affected(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"since", required_argument, NULL, OPT_SINCE},
		{"format", required_argument, NULL, OPT_FORMAT},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("affected");
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct orchd_pipeline *p;
	struct orchd_affected a;
	struct run_ctx r;
	const char *file;
	char err[1024];
	int code = 0, first;

	memset(&r, 0, sizeof(r));
	if ((first = parse_opts(cli, c, argc, argv, opts, run_opt, &r, &code)) < 0)
		return code;
	if (!(file = one_file(c, argc, argv, first, &code)))
		return code;
	if (!r.since)
		return usage_error("affected", "--since REF is required");
	if (!(p = load_pipeline_reg(cli, file, &code, &reg)))
		return code;
	if (orchd_affected(file, p, &reg, cli_env(cli), r.since, &a, err, sizeof(err)) < 0) {
		error("%s", err);
		code = ORCHD_EXIT_USAGE;
		goto out;
	}
	if (r.json_format) {
		json_object *o = json_object_new_object(), *v = json_object_new_array();

		json_object_object_add(o, "since", json_object_new_string(r.since));
		json_object_object_add(o, "commit", json_object_new_string(a.commit));
		if (p->env)
			json_object_object_add(o, "env", json_object_new_string(p->env));
		for (size_t i = 0; i < a.ninst; i++) {
			json_object *e;

			if (!a.why[i])
				continue;
			e = json_object_new_object();
			json_object_object_add(e, "id", json_object_new_string(p->inst[i].id));
			json_object_object_add(e, "reason", json_object_new_string(a.why[i]));
			json_object_array_add(v, e);
		}
		json_object_object_add(o, "affected", v);
		v = json_object_new_array();
		for (size_t i = 0; i < a.ngone; i++)
			json_object_array_add(v, json_object_new_string(a.gone[i]));
		json_object_object_add(o, "to_destroy", v);
		v = json_object_new_array();
		for (size_t i = 0; i < a.nnotes; i++)
			json_object_array_add(v, json_object_new_string(a.notes[i]));
		json_object_object_add(o, "notes", v);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_SPACED |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		affected_notes(&a, r.since);
		for (size_t i = 0; i < a.ninst; i++)
			if (a.why[i])
				printf("%s\n", p->inst[i].id);
	}
	orchd_affected_release(&a);
out:
	orchd_pipeline_free(p);
	orchd_loader_release(&reg);
	return code;
}

/*
 * validate: the file (syntax, keys, types, names, references, cycles, the
 * extensions), then, unless --syntax-only, every selected instance's own
 * validate action, as run would do it first.
 */
static int cmd_validate(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"syntax-only", no_argument, NULL, OPT_SYNTAX_ONLY},
		{"explain", required_argument, NULL, OPT_EXPLAIN},
		{"parallelism", required_argument, NULL, 'j'},
		{"target", required_argument, NULL, 't'},
		{"with-deps", no_argument, NULL, OPT_WITH_DEPS},
		{"exclude", required_argument, NULL, 'x'},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("validate");
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct orchd_pipeline *p = NULL;
	struct run_ctx r;
	const char *file;
	int code = 0, first;

	memset(&r, 0, sizeof(r));
	r.o.verb = ORCHD_VERB_VALIDATE;
	r.o.lock_timeout_ms = 5 * 60 * 1000;
	if ((first = parse_opts(cli, c, argc, argv, opts, run_opt, &r, &code)) < 0)
		goto out;
	if (!(file = one_file(c, argc, argv, first, &code)))
		goto out;
	cli->explain = r.explain;
	if (!(p = load_pipeline_reg(cli, file, &code, &reg)))
		goto out;
	if (r.explain) /* what the file says, nothing run */
		goto done;
	if (!r.syntax_only)
		code = orchestrate(&r, p, &reg, argc, argv);
	if (code == ORCHD_EXIT_OK)
		printf("%s: ok (%zu instance%s)\n", file, p->ninst, p->ninst == 1 ? "" : "s");
done:
	orchd_pipeline_free(p);
	orchd_loader_release(&reg);
out:
	free(r.targets);
	free(r.excludes);
	return code;
}

/* status, outputs, history: read the engine, start no extension. */
static int show_like(struct cli *cli, const char *name, enum orchd_show what, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"show-secrets", no_argument, NULL, OPT_SHOW_SECRETS},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command(name);
	struct run_ctx r;
	struct orchd_pipeline *p;
	int code = 0, first;

	memset(&r, 0, sizeof(r));
	if ((first = parse_opts(cli, c, argc, argv, opts, run_opt, &r, &code)) < 0)
		return code;
	if (first >= argc)
		return usage_error(name, "missing pipeline file");
	if (first + 2 < argc)
		return usage_error(name, "unexpected argument '%s'", argv[first + 2]);
	if (r.show_secrets && what != ORCHD_SHOW_OUTPUTS)
		return usage_error(name, "--show-secrets is an option of outputs");
	if (!(p = load_pipeline(cli, argv[first], &code)))
		return code;
	code = orchd_show(p, what, first + 1 < argc ? argv[first + 1] : NULL, r.o.state_dir, r.json,
			  r.show_secrets, r.limit);
	orchd_pipeline_free(p);
	return code;
}

static int cmd_status(struct cli *cli, int argc, char **argv)
{
	return show_like(cli, "status", ORCHD_SHOW_STATUS, argc, argv);
}

static int cmd_outputs(struct cli *cli, int argc, char **argv)
{
	return show_like(cli, "outputs", ORCHD_SHOW_OUTPUTS, argc, argv);
}

static int cmd_history(struct cli *cli, int argc, char **argv)
{
	return show_like(cli, "history", ORCHD_SHOW_HISTORY, argc, argv);
}
static int cmd_extensions(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("extensions");
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct op_buf err = OP_BUF_INIT;
	int code = 0, first;
	size_t i;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (first < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first]);
	if (orchd_loader_discover(&reg, cli->ext_dirs, cli->next_dirs, 0, &err) < 0)
		warning("%s", orchd_buf_str(&err));
	op_buf_release(&err);
	for (i = 0; i < reg.n; i++) {
		const struct orchd_ext_info *e = &reg.v[i];

		printf("%-16s %-10s %s%s\n", e->type, e->version, e->path,
		       !e->executable ? "  (ignored: not executable)"
		       : e->shadowed  ? "  (shadowed)"
				      : "");
		if (e->description && e->executable && !e->shadowed)
			printf("%-16s %-10s   %s\n", "", "", e->description);
		if (e->manifest_error)
			printf("%-16s %-10s   (manifest ignored: %s)\n", "", "", e->manifest_error);
	}
	if (!reg.n)
		printf("no extensions found\n");
	printf("search path:\n");
	for (i = 0; i < reg.ndirs; i++)
		printf("  %s\n", reg.dirs[i]);
	orchd_loader_release(&reg);
	return ORCHD_EXIT_OK;
}

static int doctor_opt(int opt, const char *arg, void *ctx)
{
	(void)arg;
	if (opt != 'V')
		return -1;
	*(int *)ctx = 1;
	return 0;
}

static int cmd_doctor(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"verify", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("doctor");
	struct orchd_doctor_opts d;
	struct orchd_pipeline *p = NULL;
	int code = 0, first, verify = 0;

	if ((first = parse_opts(cli, c, argc, argv, opts, doctor_opt, &verify, &code)) < 0)
		return code;
	if (first + 1 < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first + 1]);
	if (first < argc && !(p = load_pipeline(cli, argv[first], &code)))
		return code;
	memset(&d, 0, sizeof(d));
	d.ext_dirs = cli->ext_dirs;
	d.next_dirs = cli->next_dirs;
	d.p = p;
	d.verify = verify;
	code = orchd_doctor(&d);
	orchd_pipeline_free(p);
	return code;
}

struct worker_ctx {
	struct orchd_agent_opts a;
	char **eps;
	json_object *labels;
};

static int worker_opt(int opt, const char *arg, void *ctx)
{
	struct worker_ctx *w = ctx;
	char *end, *copy, *save = NULL;
	int64_t ms;
	long n;

	switch (opt) {
	case 'E':
		copy = xstrdup(arg);
		for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			w->eps = xrealloc(w->eps, (w->a.etcd.nendpoints + 1) * sizeof(*w->eps));
			w->eps[w->a.etcd.nendpoints++] = xstrdup(t);
		}
		free(copy);
		return 0;
	case 'P':
		w->a.etcd.prefix = (char *)(uintptr_t)arg;
		return 0;
	case 'C':
		w->a.etcd.ca_file = (char *)(uintptr_t)arg;
		return 0;
	case 'R':
		w->a.etcd.cert_file = (char *)(uintptr_t)arg;
		return 0;
	case 'K':
		w->a.etcd.key_file = (char *)(uintptr_t)arg;
		return 0;
	case 'U':
		w->a.etcd.user = (char *)(uintptr_t)arg;
		return 0;
	case 'W':
		w->a.etcd.password_file = (char *)(uintptr_t)arg;
		return 0;
	case 'N':
		w->a.name = arg;
		return 0;
	case 'D':
		w->a.work_dir = arg;
		return 0;
	case 'v':
		w->a.verbose = 1;
		return 0;
	case 'j':
		n = strtol(arg, &end, 10);
		if (*end || n < 1 || n > 4096)
			return usage_error(NULL, "--parallelism: expected 1..4096, got '%s'", arg)
				       ? -1
				       : -1;
		w->a.slots = (size_t)n;
		return 0;
	case 'T':
		if (orchd_parse_duration(arg, &ms) < 0 || ms < 2000 || ms > 600000)
			return usage_error(NULL, "--lease-ttl: expected 2s..10m, got '%s'", arg)
				       ? -1
				       : -1;
		w->a.ttl_ms = (long)ms;
		return 0;
	case 'L':
		copy = xstrdup(arg);
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(t, '=');

			if (eq)
				*eq = '\0';
			if (!eq || !orchd_label_ok(t, strlen(t)) ||
			    !orchd_label_ok(eq + 1, strlen(eq + 1))) {
				if (eq)
					*eq = '=';
				usage_error(
					NULL,
					"--labels: '%s' is not KEY=VALUE, each " ORCHD_LABEL_RULE,
					t);
				free(copy);
				return -1;
			}
			json_object_object_add(w->labels, t, json_object_new_string(eq + 1));
		}
		free(copy);
		return 0;
	}
	return -1;
}

static int cmd_worker(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"endpoints", required_argument, NULL, 'E'},
		{"prefix", required_argument, NULL, 'P'},
		{"cacert", required_argument, NULL, 'C'},
		{"cert", required_argument, NULL, 'R'},
		{"key", required_argument, NULL, 'K'},
		{"user", required_argument, NULL, 'U'},
		{"password-file", required_argument, NULL, 'W'},
		{"labels", required_argument, NULL, 'L'},
		{"name", required_argument, NULL, 'N'},
		{"parallelism", required_argument, NULL, 'j'},
		{"lease-ttl", required_argument, NULL, 'T'},
		{"work-dir", required_argument, NULL, 'D'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("worker");
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct op_buf err = OP_BUF_INIT;
	struct worker_ctx w;
	const char *env = getenv("ORCHD_ETCD_ENDPOINTS");
	int code = 0, first;

	memset(&w, 0, sizeof(w));
	w.labels = json_object_new_object();
	w.a.etcd.type = ORCHD_ENGINE_ETCD;
	w.a.ttl_ms = 10000;
	w.a.slots = (size_t)orchd_ncpus();
	if ((first = parse_opts(cli, c, argc, argv, opts, worker_opt, &w, &code)) < 0)
		goto out;
	code = ORCHD_EXIT_USAGE;
	if (first < argc) {
		usage_error(c->name, "unexpected argument '%s'", argv[first]);
		goto out;
	}
	if (!w.a.etcd.nendpoints && !(env && *env)) {
		usage_error(c->name, "no etcd: give --endpoints URL[,URL...] or set "
				     "ORCHD_ETCD_ENDPOINTS");
		goto out;
	}
	if (!w.a.etcd.prefix) {
		usage_error(c->name,
			    "give --prefix: the pipeline's core.engine.prefix (by "
			    "default orchd/PIPELINE/, PIPELINE being the pipeline's name, its "
			    "top-level key)");
		goto out;
	}
	w.a.etcd.endpoints = w.eps;
	w.a.labels = w.labels;
	if (orchd_loader_discover(&reg, cli->ext_dirs, cli->next_dirs, 0, &err) < 0)
		warning("%s", orchd_buf_str(&err));
	op_buf_release(&err);
	w.a.reg = &reg;
	code = orchd_agent_run(&w.a);
	orchd_loader_release(&reg);
out:
	for (size_t i = 0; i < w.a.etcd.nendpoints; i++)
		free(w.eps[i]);
	free(w.eps);
	json_object_put(w.labels);
	return code;
}

struct report_opts {
	struct orchd_report_paths out;
};

static int report_opt(int opt, const char *arg, void *ctx)
{
	struct report_opts *r = ctx;

	return report_path_opt(&r->out, opt, arg);
}

static int cmd_report(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"junit", required_argument, NULL, OPT_JUNIT},
		{"trace", required_argument, NULL, OPT_TRACE},
		{"metrics", required_argument, NULL, OPT_METRICS},
		{"html", required_argument, NULL, OPT_REPORT_HTML},
		{NULL, 0, NULL, 0},
	};
	const struct command *c = find_command("report");
	struct report_opts r = {{NULL, NULL, NULL, NULL, NULL}};
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, opts, report_opt, &r, &code)) < 0)
		return code;
	if (first + 1 < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first + 1]);
	if (!r.out.junit && !r.out.trace && !r.out.metrics && !r.out.html)
		return usage_error(c->name,
				   "nothing to write: give --html, --junit, --trace or --metrics");
	/* no operand: the last run of .orchd here (the default state
	 * directory of a pipeline file in this directory) */
	return orchd_report_convert(first < argc ? argv[first] : ".orchd", &r.out) < 0
		       ? ORCHD_EXIT_SYSTEM
		       : ORCHD_EXIT_OK;
}

static int cmd_version(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("version");
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (first < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first]);
	printf("orchd %s\n", ORCHD_VERSION);
	return ORCHD_EXIT_OK;
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("help"), *target;
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (first >= argc) {
		print_usage(stdout);
		return ORCHD_EXIT_OK;
	}
	if (first + 1 < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first + 1]);
	if (!(target = find_command(argv[first])))
		return usage_error(NULL, "unknown command '%s'", argv[first]);
	print_command_help(target, stdout);
	return ORCHD_EXIT_OK;
}

static const struct command commands[] = {
	{"run", cmd_run, "run [OPTIONS] FILE",
	 "Run the pipeline described by FILE (also: orchd FILE [OPTIONS]): validate\n"
	 "every selected instance, then apply them in dependency order, storing each\n"
	 "one's state and outputs in its stack.\n\n"
	 "Options:\n" RUN_OPTIONS_HELP
	 "      --with-deps          --target also selects the target's dependencies\n"
	 "      --only-stale         only instances whose upstream outputs changed\n"
	 "      --only-failed        only instances whose last run did not succeed\n"},
	{"plan", cmd_plan, "plan [OPTIONS] FILE",
	 "Show what run would change: validate, then each instance's plan.  Upstream\n"
	 "outputs come from the state, else from the upstream's mock_outputs.\n\n"
	 "Options:\n" RUN_OPTIONS_HELP
	 "      --with-deps          --target also selects the target's dependencies\n"
	 "      --detailed-exitcode  exit 0: no changes, 2: changes, 1: error\n"},
	{"destroy", cmd_destroy, "destroy [OPTIONS] FILE",
	 "Destroy what the pipeline created, in reverse dependency order; each stack's\n"
	 "record is removed after its instance is destroyed (its history stays).  An\n"
	 "instance without a stack has nothing to destroy and is skipped.  With\n"
	 "--target, the target and every instance that depends on it.\n\n"
	 "Options:\n" RUN_OPTIONS_HELP},
	{"status", cmd_status, "status [OPTIONS] FILE [TYPE.NAME]",
	 "Per stack: last action, status, time, and whether it is stale (an upstream's\n"
	 "outputs changed since it ran).  Starts no extension.\n\n"
	 "Options:\n"
	 "      --json               machine-readable output\n"
	 "      --state-dir DIR      state directory\n"},
	{"outputs", cmd_outputs, "outputs [OPTIONS] FILE [TYPE.NAME]",
	 "Print the stored outputs of every instance (or of one).  Secret values are\n"
	 "shown as *** unless --show-secrets (needs the passphrase).  Starts no\n"
	 "extension.\n\n"
	 "Options:\n"
	 "      --json               one JSON object: {\"TYPE.NAME\": {KEY: VALUE}}\n"
	 "      --show-secrets       print secret values in clear\n"
	 "      --state-dir DIR      state directory\n"},
	{"history", cmd_history, "history [OPTIONS] FILE [TYPE.NAME]",
	 "Print the run history of every stack (or of one), oldest first.\n\n"
	 "Options:\n"
	 "      --json               machine-readable output\n"
	 "      --limit N            only the last N entries per stack\n"
	 "      --state-dir DIR      state directory\n"},
	{"validate", cmd_validate, "validate [OPTIONS] FILE",
	 "Check FILE: YAML syntax, keys and types, names, dependencies and references,\n"
	 "cycles, and that an extension exists for every type; then run every selected\n"
	 "instance's own validate action (its extension checks its config), as run does\n"
	 "before it applies anything.  Prints every error as FILE:LINE:COLUMN: error:\n"
	 "MESSAGE, or \"FILE: ok (N instances)\".  Changes nothing.  Exit 2: the file\n"
	 "or a config is invalid; 1: a validate could not run (timed out, crashed);\n"
	 "3: an extension could not be started or is incompatible.\n\n"
	 "Options:\n"
	 "      --syntax-only        check the file only, start no extension\n"
	 "      --explain TYPE.NAME  print the instance's final config (core.defaults,\n"
	 "                           imports, template, environment applied) with the\n"
	 "                           FILE:LINE:COLUMN every value comes from; start no\n"
	 "                           extension\n"
	 "  -j, --parallelism N      run at most N validates at once\n"
	 "  -t, --target ID          only this instance (repeatable)\n"
	 "      --with-deps          --target also selects the target's dependencies\n"
	 "  -x, --exclude ID         leave this instance out (repeatable)\n"
	 "      --state-dir DIR      state directory (stored outputs resolve references)\n"
	 "      --lock-timeout DUR   wait this long for a run of the same pipeline\n"
	 "  -q, --quiet              only warnings and errors\n"
	 "  -v, --verbose            debug lines too, and a summary\n"},
	{"affected", cmd_affected, "affected --since REF [OPTIONS] FILE",
	 "List the instances that the changes since the git revision REF affect, one\n"
	 "id a line: new ones, those whose resolved definition differs (config with\n"
	 "core.defaults, templates, environment and variables applied; dependencies,\n"
	 "execution, isolation, sources), those whose watched files changed (the\n"
	 "paths their extension's manifest names in watch_keys, and their watch\n"
	 "globs; staged, unstaged and untracked changes count), and every instance\n"
	 "that depends on one of them.  Instances gone since REF are reported on\n"
	 "stderr as \"to destroy\", never destroyed.  run --since REF and plan --since\n"
	 "REF run exactly this set.  Exit 2: REF is unknown (in a shallow clone: fetch\n"
	 "more history), or FILE is not in a git repository.\n\n"
	 "Options:\n"
	 "      --since REF          the revision to compare with (a commit, branch,\n"
	 "                           tag, or any git revision: origin/main, HEAD~3)\n"
	 "      --format FORMAT      text (default) or json: {\"since\", \"commit\",\n"
	 "                           \"affected\": [{\"id\", \"reason\"}], \"to_destroy\",\n"
	 "                           \"notes\"}\n"},
	{"ext", cmd_ext,
	 "ext new NAME --lang LANG [--dir DIR] | ext test [OPTIONS] EXTENSION | ext install "
	 "[OPTIONS] SOURCE | ext install --from PIPELINE [--frozen] | ext list | ext remove TYPE "
	 "| ext upgrade TYPE [SOURCE]",
	 "The extension author's toolkit.\n\n"
	 "ext new makes the directory of a new extension of type NAME (default\n"
	 "./orchd-ext-NAME) in LANG (c, python, go or sh): the extension (it greets\n"
	 "someone: validate, plan, apply, destroy), its manifest, a README, a\n"
	 "Makefile (build, test, install), a sample pipeline and test.sh, which runs\n"
	 "ext test on it; the SDK it needs is copied in.  As made, it passes ext test.\n\n"
	 "ext test drives EXTENSION (an orchd-ext-TYPE\n"
	 "executable, or the directory holding it) through every rule of\n"
	 "protocol/PROTOCOL.md that can be seen from outside: the manifest, the\n"
	 "handshake (a wider and a disjoint protocol range), describe, validate of the\n"
	 "sample config and of broken variants (an unknown key, each key with a value\n"
	 "of another type: the errors must name the key), plan, apply, a second apply\n"
	 "(idempotence), plan after apply, destroy twice, cancellation within the\n"
	 "grace, garbage and an unknown message after the hello, a closed stdin, and\n"
	 "over all of it the framing of every line, the exit status after each result\n"
	 "and the secrecy of secret outputs.  Each check prints PASS, FAIL, WARN (a\n"
	 "SHOULD not met) or SKIP with the PROTOCOL.md section it enforces.  The\n"
	 "extension runs without a sandbox, in a fresh temporary workdir per action: it\n"
	 "really applies and destroys what the sample config says.  Exit 1 when a\n"
	 "check failed.\n\n"
	 "Options:\n"
	 "      --config FILE        the sample config: a JSON object, or a pipeline file\n"
	 "                           (its first instance of the type); default: the\n"
	 "                           pipeline.yaml beside the executable, else {}\n"
	 "      --junit FILE         also write the checks as JUnit XML\n"
	 "      --grace DUR          how long it may take to exit (default 10s)\n"
	 "  -v, --verbose            print every line exchanged\n\n"
	 "Options of ext new:\n"
	 "      --lang LANG          c, python, go or sh\n"
	 "      --dir DIR            the directory to create (default ./orchd-ext-NAME)\n\n"
	 "ext install SOURCE installs a package (a directory whose root holds\n"
	 "orchd-ext-TYPE.manifest.json; its \"build\" makes orchd-ext-TYPE): SOURCE is\n"
	 "a directory, git+URL@REF (REF a tag or a full commit id, never a branch),\n"
	 "an http(s) URL of a tarball (with --sha256 or URL#sha256=HEX), or\n"
	 "pip:REQUIREMENT (a venv of its own).  ext install --from PIPELINE installs\n"
	 "what the pipeline's core.extensions and orchd.lock beside it say, and\n"
	 "records what the lock lacks.  ext list prints TYPE VERSION SOURCE DIGEST per\n"
	 "package; ext remove TYPE removes one; ext upgrade TYPE [SOURCE] installs the\n"
	 "newest version tag of its git source (or SOURCE).  Exit 2: a bad source,\n"
	 "manifest or option, or a lock out of date with --frozen; 3: a fetch,\n"
	 "checksum, build or digest failure, a missing needed program, or a package\n"
	 "this orchd is too old for (min_orchd_version, protocol).\n\n"
	 "Options of ext install, list, remove, upgrade:\n"
	 "      --dir DIR            the extensions directory (default: the per-user\n"
	 "                           $XDG_DATA_HOME/orchd/extensions, else\n"
	 "                           ~/.local/share/orchd/extensions)\n"
	 "      --system             PREFIX/libexec/orchd/extensions\n"
	 "      --sha256 HEX         the sha256 of a tarball source\n"
	 "      --path SUB           the package's directory in a git repository\n"
	 "      --pipeline FILE      also record the package in orchd.lock beside FILE\n"
	 "      --from PIPELINE      install what PIPELINE declares (core.extensions)\n"
	 "      --frozen             with --from: refuse to change orchd.lock\n"},
	{"graph", cmd_graph, "graph [OPTIONS] FILE",
	 "Print the dependency graph of FILE (edges go from a dependency to its\n"
	 "dependent).  Changes nothing.\n\n"
	 "Options:\n"
	 "  --format FORMAT       dot (default), mermaid, or json:\n"
	 "                        {\"pipeline\", \"instances\": [{\"id\", \"type\", \"name\",\n"
	 "                        \"deps\", \"enabled\"}], \"order\": [ids in run order]}\n"},
	{"report", cmd_report, "report [OPTIONS] [REPORT]",
	 "Write a run's reports again, in other formats, from its stored JSON report:\n"
	 "REPORT is a report.json (RUN_DIR/report.json, or a copy made by --report), a\n"
	 "run directory (STATE_DIR/runs/RUN_ID), or a state directory (its latest run;\n"
	 "default: .orchd, the state beside a pipeline file here).  The logs come from\n"
	 "the run directory the report names, when it is still there.  The files are\n"
	 "the same as the run's own --report-html, --junit, --trace and --metrics\n"
	 "would have been.\n\n"
	 "Options:\n"
	 "      --html FILE          one self-contained HTML page\n"
	 "      --junit FILE         JUnit XML\n"
	 "      --trace FILE         Chrome trace-event JSON\n"
	 "      --metrics FILE       Prometheus text format\n"},
	{"extensions", cmd_extensions, "extensions [OPTIONS]",
	 "List the extensions found on the search path: --extensions-dir directories,\n"
	 "$ORCHD_EXTENSIONS_PATH, " ORCHD_PREFIX "/libexec/orchd/extensions, and\n"
	 "../libexec/orchd/extensions beside the orchd executable.  The first\n"
	 "orchd-ext-TYPE found wins; later ones are marked shadowed.\n"},
	{"doctor", cmd_doctor, "doctor [OPTIONS] [FILE]",
	 "Show what this host and user offer orchd: each isolation layer (user, PID,\n"
	 "mount, IPC, UTS and network namespaces, seccomp, Landlock, no_new_privs,\n"
	 "cgroups for the limits), available or not and why, what isolation strict\n"
	 "amounts to here, the state engine, the extensions found with what their\n"
	 "manifests declare, and whether the tools they need are on PATH.  With FILE,\n"
	 "that pipeline's state engine and core.isolation.\n\n"
	 "Options:\n"
	 "      --verify             run orchd's probe extension in a throwaway pipeline\n"
	 "                           under FILE's core.isolation (or the defaults): it\n"
	 "                           tries each attack of a hostile extension (read\n"
	 "                           orchd's memory and environment, the state directory,\n"
	 "                           a sibling's workdir, ptrace, forge a stack, leave a\n"
	 "                           daemon, fork bomb, memory, the network...) and each\n"
	 "                           is shown contained or EXPOSED.  Exit 1 when one is\n"
	 "                           exposed.\n"},
	{"worker", cmd_worker, "worker --endpoints URLS --prefix P [OPTIONS]",
	 "Run the steps that `orchd run --workers` publishes for one pipeline, until\n"
	 "SIGTERM or SIGINT (README, \"Running on many machines\").  The worker\n"
	 "registers under a lease, takes the jobs whose execution.runs_on its labels\n"
	 "meet, runs each with the extensions of this host (--extensions-dir, the\n"
	 "usual search path) in the usual sandbox, and sends back the lines and the\n"
	 "result.  With a passphrase in the pipeline, it needs the same\n"
	 "ORCHD_PASSPHRASE or ORCHD_PASSPHRASE_FILE.  On SIGTERM it takes nothing\n"
	 "more, stops what runs (another worker takes it over) and exits 0.\n\n"
	 "Options:\n"
	 "      --endpoints URLS     etcd client URLs, comma-separated (or\n"
	 "                           ORCHD_ETCD_ENDPOINTS)\n"
	 "      --prefix P           the pipeline's key prefix (core.engine.prefix; by\n"
	 "                           default orchd/PIPELINE/)\n"
	 "      --cacert F, --cert F, --key F   TLS, as core.engine.tls\n"
	 "      --user U             etcd user; password from ORCHD_ETCD_PASSWORD or\n"
	 "      --password-file F\n"
	 "      --labels K=V[,K=V]   what this worker offers (repeatable)\n"
	 "      --name NAME          its name (default HOST-PID); unique among the\n"
	 "                           workers of the pipeline\n"
	 "  -j, --parallelism N      steps at once (default: the number of CPUs)\n"
	 "      --lease-ttl DUR      its lease (default 10s): a worker silent this long\n"
	 "                           is taken for dead and its steps run elsewhere\n"
	 "      --work-dir DIR       parent of the steps' workdirs (default\n"
	 "                           $TMPDIR/orchd-worker-NAME)\n"
	 "  -v, --verbose            print each claim, result and extension line\n"},
	{"version", cmd_version, "version", "Print the version of orchd.\n"},
	{"help", cmd_help, "help [COMMAND]", "Show help for orchd or for COMMAND.\n"},
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: orchd [--extensions-dir DIR]... COMMAND [ARGS]\n"
		    "       orchd [--extensions-dir DIR]... FILE    (same as: orchd run FILE)\n\n"
		    "Commands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(fp, "  %s\n", commands[i].synopsis);
	fprintf(fp,
		"\nGlobal options:\n"
		"  --extensions-dir DIR  search DIR for extensions first (repeatable)\n"
		"  --env NAME            apply core.environments.NAME (default: $ORCHD_ENV)\n"
		"  -h, --help            show this help ('orchd COMMAND --help' for a command)\n"
		"  --version             print the version\n\n" EXIT_CODES_HELP);
}

int main(int argc, char **argv)
{
	struct cli cli = {NULL, 0, 0, NULL, NULL};
	const struct command *c;
	int i = 1, code;

	/* The passphrase is read once and scrubbed from the environment; no
	 * other process of the user may read orchd's memory (ptrace, core
	 * dumps, /proc/PID/environ and mem). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	orchd_crypto_passphrase_load();

	/* Global options, before the command. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			i++;
			break;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_usage(stdout);
			return ORCHD_EXIT_OK;
		} else if (!strcmp(a, "--version")) {
			printf("orchd %s\n", ORCHD_VERSION);
			return ORCHD_EXIT_OK;
		} else if (!strcmp(a, "--extensions-dir")) {
			if (i + 1 >= argc)
				return usage_error(NULL, "option '--extensions-dir' needs a value");
			add_ext_dir(&cli, argv[i + 1]);
			i += 2;
		} else if (!strncmp(a, "--extensions-dir=", 17)) {
			add_ext_dir(&cli, a + 17);
			i++;
		} else if (!strcmp(a, "--env")) {
			if (i + 1 >= argc)
				return usage_error(NULL, "option '--env' needs a value");
			cli.env = argv[i + 1];
			i += 2;
		} else if (!strncmp(a, "--env=", 6)) {
			cli.env = a + 6;
			i++;
		} else {
			return usage_error(NULL, "unknown option '%s'", a);
		}
	}
	if (i >= argc) {
		print_usage(stderr);
		return ORCHD_EXIT_USAGE;
	}
	c = find_command(argv[i]);
	if (c) {
		code = c->fn(&cli, argc - i, argv + i);
	} else if (strchr(argv[i], '.') || strchr(argv[i], '/')) {
		/* orchd FILE: a path, not a command name */
		char run[] = "run";
		char **args = xcalloc((size_t)(argc - i) + 2, sizeof(*args));
		int n = 0;

		args[n++] = run;
		for (int k = i; k < argc; k++)
			args[n++] = argv[k];
		code = cmd_run(&cli, n, args);
		free(args);
	} else {
		code = usage_error(NULL, "unknown command '%s'", argv[i]);
	}
	free(cli.ext_dirs);
	return code;
}
