#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchd_protocol.h"
#include "util.h"

static char *join_env(const char *var, const char *dflt, const char *rel)
{
	const char *base = getenv(var);

	return xasprintf("%s/%s", base && *base ? base : dflt, rel);
}

char *test_src_path(const char *rel)
{
	return join_env("ORCHD_SRC", ".", rel);
}

char *test_build_path(const char *rel)
{
	return join_env("ORCHD_BUILD", "build", rel);
}

char *test_read_file(const char *path, size_t *len)
{
	struct op_buf sb = OP_BUF_INIT;
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (op_buf_add(&sb, buf, (size_t)n) < 0)
			break;
	close(fd);
	if (n < 0) {
		op_buf_release(&sb);
		return NULL;
	}
	return op_buf_detach(&sb, len);
}

char *test_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p = xasprintf("%s/orchd-test-XXXXXX", t && *t ? t : "/tmp");

	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

void test_rmtree(const char *path)
{
	pid_t pid;

	if (!path || !*path)
		return;
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int test_install_example(const char *sub, const char *dir)
{
	static const char script[] =
		"set -e\n"
		"ex=$1/examples/extensions/$2 sdk=$1/protocol/sdk/$2\n"
		"cp -p \"$ex\"/orchd-ext-* \"$3\"/\n"
		"if [ -d \"$sdk/orchd_sdk\" ]; then\n"
		"  mkdir -p \"$3/orchd_sdk\"\n"
		"  cp -p \"$sdk\"/orchd_sdk/*.py \"$sdk/orchd_sdk/py.typed\" \"$3/orchd_sdk/\"\n"
		"else\n"
		"  cp -p \"$sdk/orchd.sh\" \"$3/\"\n"
		"fi\n";
	char *argv[] = {xstrdup("/bin/sh"), xstrdup("-c"), xstrdup(script), xstrdup("sh"),
			test_src_path("."), xstrdup(sub),  xstrdup(dir),    NULL};
	char *err = NULL;
	int rc = test_run(argv, NULL, &err);

	if (rc != 0)
		fprintf(stderr, "test_install_example %s: %s", sub, err ? err : "");
	free(err);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	return rc == 0 ? 0 : -1;
}

int test_run(char *const argv[], char **out, char **err)
{
	int po[2], pe[2], status;
	struct op_buf sbo = OP_BUF_INIT, sbe = OP_BUF_INIT;
	struct pollfd pfd[2];
	pid_t pid;
	int open_fds = 2;

	if (pipe2(po, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	pfd[0].fd = po[0];
	pfd[1].fd = pe[0];
	pfd[0].events = pfd[1].events = POLLIN;
	while (open_fds > 0) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			char buf[8192];
			ssize_t n;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pfd[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			op_buf_add(i ? &sbe : &sbo, buf, (size_t)n);
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out)
		*out = op_buf_detach(&sbo, NULL);
	else
		op_buf_release(&sbo);
	if (err)
		*err = op_buf_detach(&sbe, NULL);
	else
		op_buf_release(&sbe);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int test_httpd_start(struct test_httpd *h, const char *cert, const char *key)
{
	char *script = test_src_path("tests/helpers/httpd.py");
	int in[2], out[2];
	char buf[32];
	size_t len = 0;
	struct pollfd pfd;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		free(script);
		return -1;
	}
	h->pid = fork();
	if (h->pid < 0) {
		free(script);
		return -1;
	}
	if (h->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (cert)
			execlp("python3", "python3", script, "--tls", cert, key, (char *)NULL);
		else
			execlp("python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	free(script);
	close(in[0]);
	close(out[1]);
	h->stdin_fd = in[1];
	pfd.fd = out[0];
	pfd.events = POLLIN;
	while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
		ssize_t n;

		if (poll(&pfd, 1, 20000) <= 0)
			break;
		n = read(out[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	buf[len] = '\0';
	h->port = atoi(buf);
	return h->port > 0 ? 0 : -1;
}

void test_httpd_stop(struct test_httpd *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGTERM);
		waitpid(h->pid, NULL, 0);
		h->pid = -1;
	}
	if (h->stdin_fd >= 0) {
		close(h->stdin_fd);
		h->stdin_fd = -1;
	}
}

int test_process_with_arg(const char *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int found = 0;

	while (d && !found && (e = readdir(d))) {
		char path[300], buf[256];
		size_t n;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[n] = '\0';
		found = strstr(buf, arg) != NULL;
	}
	if (d)
		closedir(d);
	return found;
}

int test_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int test_can_connect(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* A copy of the pipeline beside it (same directory, so relative paths still
 * hold) with one line switched: core.engine is ENGINE (a YAML flow
 * mapping).  Returns its path; the caller unlinks it. */
char *test_engine_variant(const char *src, const char *engine)
{
	char *text = test_read_file(src, NULL), *p, *out, *path;
	struct op_buf sb = OP_BUF_INIT;
	const char *core;
	FILE *f;

	ck_assert_ptr_nonnull(text);
	core = strstr(text, "\n  core:\n");
	if (core) {
		core += strlen("\n  core:\n");
		op_buf_add(&sb, text, (size_t)(core - text));
		op_buf_addstr(&sb, "    engine: ");
		op_buf_addstr(&sb, engine);
		op_buf_addstr(&sb, "\n");
		op_buf_addstr(&sb, core);
	} else {
		/* No core section: add one under the pipeline's key (the first
		 * line that starts with neither '#' nor a space). */
		for (p = text; *p == '#' || *p == '\n'; p = strchr(p, '\n') + 1)
			;
		p = strchr(p, '\n') + 1;
		op_buf_add(&sb, text, (size_t)(p - text));
		op_buf_addstr(&sb, "  core:\n    engine: ");
		op_buf_addstr(&sb, engine);
		op_buf_addstr(&sb, "\n");
		op_buf_addstr(&sb, p);
	}
	out = op_buf_detach(&sb, NULL);
	path = xasprintf("%.*s/.engine-variant-%ld.yaml", (int)(strrchr(src, '/') - src), src,
			 (long)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(out, f);
	fclose(f);
	free(out);
	free(text);
	return path;
}
