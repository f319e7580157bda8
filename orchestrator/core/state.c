/*
 * state: the core's side of the state engine.  See state.h.
 */
#include "core/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "orchd_protocol.h"
#include "util.h"

/* Directory part of a path, "" for a bare file name. */
static char *dir_of(const char *file)
{
	const char *slash = file ? strrchr(file, '/') : NULL;

	if (!slash)
		return xstrdup("");
	if (slash == file)
		return xstrdup("/");
	return xstrndup(file, (size_t)(slash - file + 1));
}

char *orchd_state_dir(const struct orchd_pipeline *p, const char *cli_state_dir)
{
	const char *rel = ".orchd";
	char *dir, *ret;

	if (cli_state_dir && *cli_state_dir)
		return xstrdup(cli_state_dir);
	if (p && p->core.state_dir && *p->core.state_dir) {
		if (p->core.state_dir[0] == '/')
			return xstrdup(p->core.state_dir);
		rel = p->core.state_dir;
	}
	dir = dir_of(p ? p->file : NULL);
	ret = xasprintf("%s%s", dir, rel);
	free(dir);
	return ret;
}

/* A file the engine config names, relative to the pipeline file's directory
 * (like state_dir); NULL stays NULL. */
static char *engine_path(const struct orchd_pipeline *p, const char *path)
{
	char *dir, *ret;

	if (!path || path[0] == '/')
		return path ? xstrdup(path) : NULL;
	dir = dir_of(p->file);
	ret = xasprintf("%s%s", dir, path);
	free(dir);
	return ret;
}

int orchd_state_open(const struct orchd_pipeline *p, const char *state_dir,
		     struct orchd_engine **out, char *err, size_t errlen)
{
	struct orchd_engine_config c = p->core.engine;
	char *files[4];
	int r;

	files[0] = c.ca_file = engine_path(p, p->core.engine.ca_file);
	files[1] = c.cert_file = engine_path(p, p->core.engine.cert_file);
	files[2] = c.key_file = engine_path(p, p->core.engine.key_file);
	files[3] = c.password_file = engine_path(p, p->core.engine.password_file);
	r = orchd_engine_open(&c, state_dir, p->name, out, err, errlen);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		free(files[i]);
	return r;
}

int orchd_state_lock(struct orchd_engine *e, const char *run_id, int argc, char *const argv[],
		     long timeout_ms, char *err, size_t errlen)
{
	struct op_buf cmd = OP_BUF_INIT;
	struct orchd_lock_request req;
	int ret;

	/* the command line for whoever waits, cut at 4 KiB */
	for (int i = 0; argv && i < argc && cmd.len < 4096; i++) {
		if (i)
			op_buf_addch(&cmd, ' ');
		op_buf_addstr(&cmd, argv[i]);
	}
	if (cmd.len > 4096) {
		op_buf_setlen(&cmd, 4093);
		op_buf_addstr(&cmd, "...");
	}
	req.run_id = run_id;
	req.command = cmd.len ? orchd_buf_str(&cmd) : NULL;
	req.timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
	ret = orchd_engine_lock(e, &req, err, errlen);
	op_buf_release(&cmd);
	return ret;
}

char *orchd_run_id_new(void)
{
	unsigned char r[4] = {0, 0, 0, 0};
	char tbuf[32], ebuf[128];
	struct tm tm;
	time_t t = time(NULL);

	if (orchd_crypto_random(r, sizeof(r), ebuf, sizeof(ebuf))) {
		long long n = now_ms();

		memcpy(r, &n, sizeof(r));
	}
	gmtime_r(&t, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y%m%dT%H%M%SZ", &tm);
	return xasprintf("r-%s-%02x%02x%02x%02x", tbuf, r[0], r[1], r[2], r[3]);
}
