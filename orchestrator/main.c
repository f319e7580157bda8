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
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bootstrap.h"
#include "core/loader.h"
#include "strbuf.h"
#include "util.h"

struct cli {
	const char **ext_dirs; /* --extensions-dir, in order */
	size_t next_dirs, ext_alloc;
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
	struct option opts[16];
	size_t n = 0;
	int opt;

	opts[n++] = (struct option){"extensions-dir", required_argument, NULL, OPT_EXT_DIR};
	opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	while (extra && extra->name && n < ARRAY_SIZE(opts) - 1)
		opts[n++] = *extra++;
	opts[n] = (struct option){NULL, 0, NULL, 0};
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			print_command_help(c, stdout);
			*code = ORCHD_EXIT_OK;
			return -2;
		case OPT_EXT_DIR:
			add_ext_dir(cli, optarg);
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

/*
 * Load, discover extensions and validate: the common front of validate,
 * graph and run.  Returns the pipeline, or NULL with the diagnostics
 * printed and *code set.
 */
static struct orchd_pipeline *load_pipeline(struct cli *cli, const char *file, int *code)
{
	struct orchd_diags d;
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct orchd_pipeline *p = NULL;
	struct strbuf err = STRBUF_INIT;
	const char **types;
	size_t ntypes;
	int ret;

	orchd_diags_init(&d);
	ret = orchd_bootstrap_load_file(file, &p, &d);
	if (p) {
		if (orchd_loader_discover(&reg, cli->ext_dirs, cli->next_dirs, 0, &err) < 0)
			warning("%s", sb_str(&err));
		types = orchd_loader_types(&reg, &ntypes);
		if (orchd_pipeline_validate(p, types, ntypes, &d) < 0)
			ret = -1;
		free(types);
		orchd_loader_release(&reg);
	}
	sb_release(&err);
	if (ret < 0) {
		orchd_diags_print(&d, stderr);
		orchd_diags_release(&d);
		orchd_pipeline_free(p);
		*code = ORCHD_EXIT_USAGE;
		return NULL;
	}
	orchd_diags_release(&d);
	return p;
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

static int cmd_validate(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("validate");
	struct orchd_pipeline *p;
	const char *file;
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (!(file = one_file(c, argc, argv, first, &code)))
		return code;
	if (!(p = load_pipeline(cli, file, &code)))
		return code;
	printf("%s: ok (%zu instance%s)\n", file, p->ninst, p->ninst == 1 ? "" : "s");
	orchd_pipeline_free(p);
	return ORCHD_EXIT_OK;
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
static void put_quoted(struct strbuf *sb, const char *s)
{
	sb_addch(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sb_addch(sb, '\\');
		sb_addch(sb, *s);
	}
	sb_addch(sb, '"');
}

static void graph_dot(const struct orchd_pipeline *p, struct strbuf *sb)
{
	size_t i, j;

	sb_addstr(sb, "digraph ");
	put_quoted(sb, p->name);
	sb_addstr(sb, " {\n\trankdir=LR;\n");
	for (i = 0; i < p->ninst; i++) {
		sb_addch(sb, '\t');
		put_quoted(sb, p->inst[i].id);
		sb_addstr(sb, p->inst[i].enabled ? ";\n" : " [style=dashed];\n");
	}
	for (i = 0; i < p->ninst; i++)
		for (j = 0; j < p->inst[i].ndeps; j++) {
			sb_addch(sb, '\t');
			put_quoted(sb, p->inst[p->inst[i].deps[j]].id);
			sb_addstr(sb, " -> ");
			put_quoted(sb, p->inst[i].id);
			sb_addstr(sb, ";\n");
		}
	sb_addstr(sb, "}\n");
}

static void graph_mermaid(const struct orchd_pipeline *p, struct strbuf *sb)
{
	size_t i, j;

	sb_addstr(sb, "flowchart LR\n");
	for (i = 0; i < p->ninst; i++) {
		sb_addf(sb, "\tn%zu[", i);
		put_quoted(sb, p->inst[i].id);
		sb_addstr(sb, "]\n");
		if (!p->inst[i].enabled)
			sb_addf(sb, "\tstyle n%zu stroke-dasharray: 5 5\n", i);
	}
	for (i = 0; i < p->ninst; i++)
		for (j = 0; j < p->inst[i].ndeps; j++)
			sb_addf(sb, "\tn%zu --> n%zu\n", p->inst[i].deps[j], i);
}

/* A JSON string (names are from the safe set, but escape anyway). */
static void put_json_str(struct strbuf *sb, const char *s)
{
	sb_addch(sb, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		size_t plain = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r"
					  "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
					  "\x1b\x1c\x1d\x1e\x1f");

		if (plain) {
			sb_add(sb, s, plain);
			s += plain - 1;
			continue;
		}
		if (c == '"' || c == '\\')
			sb_addf(sb, "\\%c", c);
		else if (c < 0x20)
			sb_addf(sb, "\\u%04x", c);
		else
			sb_addch(sb, (char)c);
	}
	sb_addch(sb, '"');
}

/*
 * Written directly rather than through json-c objects: at 10 000 instances
 * the object tree would double the memory of the whole command.
 */
static void graph_json(const struct orchd_pipeline *p, const size_t *order, struct strbuf *sb)
{
	size_t i, j;

	sb_addstr(sb, "{\"pipeline\":");
	put_json_str(sb, p->name);
	sb_addstr(sb, ",\"instances\":[");
	for (i = 0; i < p->ninst; i++) {
		const struct orchd_instance *in = &p->inst[i];

		sb_addstr(sb, i ? ",{\"id\":" : "{\"id\":");
		put_json_str(sb, in->id);
		sb_addstr(sb, ",\"type\":");
		put_json_str(sb, in->type);
		sb_addstr(sb, ",\"name\":");
		put_json_str(sb, in->name);
		sb_addstr(sb, ",\"deps\":[");
		for (j = 0; j < in->ndeps; j++) {
			if (j)
				sb_addch(sb, ',');
			put_json_str(sb, p->inst[in->deps[j]].id);
		}
		sb_addstr(sb, in->enabled ? "],\"enabled\":true}" : "],\"enabled\":false}");
	}
	sb_addstr(sb, "],\"order\":[");
	for (i = 0; i < p->ninst; i++) {
		if (i)
			sb_addch(sb, ',');
		put_json_str(sb, p->inst[order[i]].id);
	}
	sb_addstr(sb, "]}\n");
}

static int cmd_graph(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
					     {NULL, 0, NULL, 0}};
	const struct command *c = find_command("graph");
	enum graph_format fmt = GRAPH_DOT;
	struct orchd_pipeline *p;
	struct strbuf out = STRBUF_INIT;
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
	if (orchd_pipeline_topo_order(p, order) < 0)
		die("internal error: cycle after validation"); /* validate reports cycles */
	if (fmt == GRAPH_DOT)
		graph_dot(p, &out);
	else if (fmt == GRAPH_MERMAID)
		graph_mermaid(p, &out);
	else
		graph_json(p, order, &out);
	fwrite(sb_str(&out), 1, out.len, stdout);
	sb_release(&out);
	free(order);
	orchd_pipeline_free(p);
	if (fflush(stdout) != 0) {
		error("cannot write the graph: %s", strerror(errno));
		return ORCHD_EXIT_SYSTEM;
	}
	return ORCHD_EXIT_OK;
}

static int cmd_run(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("run");
	struct orchd_pipeline *p;
	const char *file;
	int code = 0, first;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (!(file = one_file(c, argc, argv, first, &code)))
		return code;
	if (!(p = load_pipeline(cli, file, &code)))
		return code;
	orchd_pipeline_free(p);
	error("run is not implemented yet");
	return ORCHD_EXIT_SYSTEM;
}

static int cmd_extensions(struct cli *cli, int argc, char **argv)
{
	const struct command *c = find_command("extensions");
	struct orchd_registry reg = ORCHD_REGISTRY_INIT;
	struct strbuf err = STRBUF_INIT;
	int code = 0, first;
	size_t i;

	if ((first = parse_opts(cli, c, argc, argv, NULL, NULL, NULL, &code)) < 0)
		return code;
	if (first < argc)
		return usage_error(c->name, "unexpected argument '%s'", argv[first]);
	if (orchd_loader_discover(&reg, cli->ext_dirs, cli->next_dirs, 0, &err) < 0)
		warning("%s", sb_str(&err));
	sb_release(&err);
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
	 "Run the pipeline described by FILE (also: orchd FILE).\n"},
	{"validate", cmd_validate, "validate [OPTIONS] FILE",
	 "Check FILE: YAML syntax, keys and types, names, dependencies and references,\n"
	 "cycles, and that an extension exists for every type.  Prints every error as\n"
	 "FILE:LINE:COLUMN: error: MESSAGE, or \"FILE: ok (N instances)\".  Changes nothing.\n"},
	{"graph", cmd_graph, "graph [OPTIONS] FILE",
	 "Print the dependency graph of FILE (edges go from a dependency to its\n"
	 "dependent).  Changes nothing.\n\n"
	 "Options:\n"
	 "  --format FORMAT       dot (default), mermaid, or json:\n"
	 "                        {\"pipeline\", \"instances\": [{\"id\", \"type\", \"name\",\n"
	 "                        \"deps\", \"enabled\"}], \"order\": [ids in run order]}\n"},
	{"extensions", cmd_extensions, "extensions [OPTIONS]",
	 "List the extensions found on the search path: --extensions-dir directories,\n"
	 "$ORCHD_EXTENSIONS_PATH, " ORCHD_PREFIX "/libexec/orchd/extensions, and\n"
	 "../libexec/orchd/extensions beside the orchd executable.  The first\n"
	 "orchd-ext-TYPE found wins; later ones are marked shadowed.\n"},
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
		"  -h, --help            show this help ('orchd COMMAND --help' for a command)\n"
		"  --version             print the version\n\n" EXIT_CODES_HELP);
}

int main(int argc, char **argv)
{
	struct cli cli = {NULL, 0, 0};
	const struct command *c;
	int i = 1, code;

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
		char *args[] = {run, argv[i], NULL};

		if (i + 1 < argc)
			return usage_error(NULL, "unexpected argument '%s'", argv[i + 1]);
		code = cmd_run(&cli, 2, args);
	} else {
		code = usage_error(NULL, "unknown command '%s'", argv[i]);
	}
	free(cli.ext_dirs);
	return code;
}
