/*
 * local: the embedded state engine.
 *
 * Layout of a state directory (also in interfaces/STATE.md):
 *
 *   STATE_DIR/lock                      flock(2) target of the pipeline lock
 *   STATE_DIR/lock.info                 holder record (JSON), while held
 *   STATE_DIR/crypto.json               KDF salt + parameters + key check,
 *                                       created with the first secret
 *   STATE_DIR/stacks/STACK.json         one record per stack, versioned:
 *                                       {"format":"orchd-stack","version":1,...}
 *   STATE_DIR/stacks/STACK.history.jsonl  append-only, one JSON line per run
 *   STATE_DIR/stacks/.STACK.json.tmp.*  a write in progress (or killed)
 *   STATE_DIR/journal                   records written since the last
 *                                       checkpoint (group commit)
 *
 * Guarantees (the argument is in STATE.md, "Group commit"): the records of
 * one sync are appended to the journal, each with its length and SHA-256,
 * and made durable by one fdatasync of the journal; only then is each
 * stack file replaced (temp file and rename, never rewritten in place, not
 * fsync'ed), so after a crash at any moment a stack file holds an old or a
 * new record and the journal holds every record reported stored.  At
 * unlock/close (local_flush) the stack files written since, their
 * directory and the history files are synced, then the journal is emptied;
 * after a crash the next lock replays it (a torn last entry was never
 * reported stored, and is dropped).  A file that does
 * not parse or has another version is an error naming it and is never
 * replaced.  History lines are appended with O_APPEND in one write(2), not
 * fsync'ed one by one: the dirty history files are synced at unlock/close
 * too; a torn line (crash mid-append) is skipped on read with a warning.  Secret values are stored as
 * {"secret":true,"enc":"aes-256-gcm","nonce":B64,"ct":B64} with associated
 * data "orchd\0STACK\0output\0KEY" (or "orchd\0STACK\0state"), so they cannot
 * be moved between stacks or keys.
 */
#include "interfaces/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include "crypto.h"
#include "interfaces/record.h"
#include "hash.h"
#include "orchd_protocol.h"
#include "cache.h"
#include "util.h"

#define LOCK_POLL_MS   50
#define MAX_STATE_FILE (256L * 1024 * 1024)

struct local {
	char *dir;		  /* state directory, as given */
	char *stacks;		  /* dir/stacks */
	struct orchd_sealer seal; /* the passphrase, the key, crypto.json */
	int lock_fd;		  /* -1 when not locked */
	unsigned tmp_seq;
	int stacks_dirty;  /* a rename in stacks/ not yet made durable */
	char **hist_dirty; /* files written, not yet fsync'ed: history files
			      and the stack files of the journal */
	size_t hist_nr, hist_alloc;
	/* the journal: records written since the last sync, then since the
	 * last checkpoint */
	struct pending *pend;
	size_t npend, apend, pend_bytes;
	int jfd;     /* STATE_DIR/journal, appending; -1 until needed */
	off_t jsize; /* its length */
	int jmine;   /* this engine appended to it (or replayed it) since the
			last checkpoint: its checkpoint is ours to make */
	int jbroken; /* a failed append that could not be undone */
};

/* A record (or a removal) waiting for the next sync. */
struct pending {
	char *stack;
	char *data; /* the file's text; NULL: remove the stack */
	size_t len;
};

#define JOURNAL_MAGIC "orchd-journal 1"
/* Past this many bytes the journal is checkpointed during a run, and past
 * this many pending bytes a write syncs at once. */
#define JOURNAL_CHECKPOINT (32L * 1024 * 1024)
/* The largest journal replayed: a checkpoint and one batch of records. */
#define MAX_JOURNAL (JOURNAL_CHECKPOINT + 2 * MAX_STATE_FILE)

/* Above this many dirty history files, one syncfs(2) beats an fsync each. */
#define HIST_SYNCFS_MIN 16

static struct local *L(struct orchd_engine *e)
{
	return e->priv;
}

/* --- files -------------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_file_max(const char *path, char **buf, size_t *len, size_t max);

/* 0 ok, 1 missing, -1 error (errno set). *buf is malloc'ed, NUL-terminated. */
static int read_file(const char *path, char **buf, size_t *len)
{
	return read_file_max(path, buf, len, MAX_STATE_FILE);
}

static int read_file_max(const char *path, char **buf, size_t *len, size_t max)
{
	struct op_buf sb = OP_BUF_INIT;
	char chunk[8192];
	int fd;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	op_buf_init(&sb, max);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n > 0 && op_buf_add(&sb, chunk, (size_t)n))) {
			int e = errno;

			op_buf_release(&sb);
			close(fd);
			errno = e;
			return -1;
		}
		if (!n)
			break;
	}
	close(fd);
	*buf = op_buf_detach(&sb, len);
	if (!*buf) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/*
 * Write data to a fresh temp file in dir, fsync, then rename it to path
 * (exclusive: link() instead, failing with EEXIST if path exists) and fsync
 * dir, or, with defer_dir, leave the directory fsync to local_flush().  On
 * error nothing is left behind and errno describes the failure.
 */
static int atomic_write(struct local *l, const char *dir, const char *path, const char *base,
			const char *data, size_t len, int exclusive, int defer_dir, int sync_data)
{
	char *tmp = xasprintf("%s/.%s.tmp.%ld.%u", dir, base, (long)getpid(), l->tmp_seq++);
	int fd, e;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		free(tmp);
		errno = e;
		return -1;
	}
	if (write_all(fd, data, len) || (sync_data && fsync(fd))) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (close(fd)) {
		e = errno;
		goto fail;
	}
	if (exclusive ? link(tmp, path) : rename(tmp, path)) {
		e = errno;
		goto fail;
	}
	if (exclusive)
		unlink(tmp);
	free(tmp);
	if (defer_dir) {
		l->stacks_dirty = 1;
		return 0;
	}
	if (fsync_dir(dir))
		return -1;
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	errno = e;
	return -1;
}

static char *iso_time(time_t t)
{
	struct tm tm;
	char buf[32];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(buf);
}

/* Create STATE_DIR/stacks (and STATE_DIR) if needed, durably. */
static int make_stacks_dir(struct local *l)
{
	if (!access(l->stacks, F_OK))
		return 0;
	if (orchd_mkdir_p(l->stacks, 0700, NULL, 0) || fsync_dir(l->dir))
		return -1;
	return 0;
}

static char *stack_path(struct local *l, const char *stack)
{
	return xasprintf("%s/%s.json", l->stacks, stack);
}

static char *history_path(struct local *l, const char *stack)
{
	return xasprintf("%s/%s.history.jsonl", l->stacks, stack);
}

static int check_stack(const char *stack, char *err, size_t errlen)
{
	if (!orchd_stack_name_ok(stack))
		return orchd_set_err(err, errlen, "invalid stack name '%s'", stack ? stack : "");
	return 0;
}

/* --- crypto.json (the sealer's document) -------------------------------- */

static int crypto_load(void *ctx, char **buf, size_t *len, char *err, size_t errlen)
{
	struct local *l = ctx;
	int r = read_file(l->seal.doc, buf, len);

	if (r < 0)
		return orchd_set_err(err, errlen, "cannot read %s: %s", l->seal.doc,
				     strerror(errno));
	return r;
}

/* Created by link(2): never replaces one made meanwhile. */
static int crypto_store(void *ctx, const char *buf, size_t len, char *err, size_t errlen)
{
	struct local *l = ctx;

	if (!orchd_mkdir_p(l->dir, 0700, NULL, 0) &&
	    !atomic_write(l, l->dir, l->seal.doc, "crypto.json", buf, len, 1, 0, 1))
		return 0;
	if (errno == EEXIST)
		return 1;
	return orchd_set_err(err, errlen, "cannot write %s: %s", l->seal.doc, strerror(errno));
}

/* --- operations ----------------------------------------------------------- */

static int local_select(struct orchd_engine *e, const char *stack, int create, char *err,
			size_t errlen)
{
	struct local *l = L(e);
	char *path;
	int ret = 0;

	if (check_stack(stack, err, errlen))
		return -1;
	path = stack_path(l, stack);
	if (access(path, F_OK)) {
		if (errno != ENOENT)
			ret = orchd_set_err(err, errlen, "stack %s: cannot access %s: %s", stack,
					    path, strerror(errno));
		else if (!create)
			ret = 1;
		else if (make_stacks_dir(l))
			ret = orchd_set_err(err, errlen, "stack %s: cannot create %s: %s", stack,
					    l->stacks, strerror(errno));
	}
	free(path);
	return ret;
}

static int local_read(struct orchd_engine *e, const char *stack, struct orchd_stack_record *rec,
		      char *err, size_t errlen)
{
	struct local *l = L(e);
	char *path, *buf = NULL, *where = NULL;
	json_object *o = NULL;
	size_t len;
	int r;

	if (check_stack(stack, err, errlen))
		return -1;
	path = stack_path(l, stack);
	r = read_file(path, &buf, &len);
	if (r < 0)
		r = orchd_set_err(err, errlen, "stack %s: cannot read %s: %s", stack, path,
				  strerror(errno));
	if (r)
		goto out;
	where = xasprintf("stack file %s", path);
	o = orchd_record_load(stack, where, buf, len, err, errlen);
	if (!o || orchd_record_from_json(&l->seal, stack, where, o, rec, err, errlen)) {
		/* Leave the record empty, as documented. */
		orchd_stack_record_release(rec);
		orchd_stack_record_init(rec);
		r = -1;
	}
out:
	json_object_put(o);
	free(buf);
	free(where);
	free(path);
	return r;
}

/* The last pending entry of stack, or NULL. */
static struct pending *pending_of(struct local *l, const char *stack)
{
	for (size_t i = l->npend; i-- > 0;)
		if (!strcmp(l->pend[i].stack, stack))
			return &l->pend[i];
	return NULL;
}

static void pending_push(struct local *l, const char *stack, char *data, size_t len)
{
	ALLOC_GROW(l->pend, l->npend + 1, l->apend);
	l->pend[l->npend].stack = xstrdup(stack);
	l->pend[l->npend].data = data;
	l->pend[l->npend].len = len;
	l->npend++;
	l->pend_bytes += len;
}

static void pending_clear(struct local *l)
{
	for (size_t i = 0; i < l->npend; i++) {
		free(l->pend[i].stack);
		free(l->pend[i].data);
	}
	l->npend = 0;
	l->pend_bytes = 0;
}

static int local_sync(struct orchd_engine *e, char *err, size_t errlen);

static int local_write_deferred(struct orchd_engine *e, const char *stack,
				const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	struct local *l = L(e);
	char *path = NULL, *buf = NULL;
	json_object *o = NULL, *old = NULL;
	struct pending *p;
	const char *s;
	int need_key, r, ret = -1;
	size_t len;

	if (check_stack(stack, err, errlen) ||
	    orchd_record_precheck(&l->seal, stack, rec, &need_key, err, errlen))
		return -1;
	path = stack_path(l, stack);
	/* The record it replaces: a pending one, else the file.  Never
	 * replace a file we cannot read: it may be a newer format. */
	p = pending_of(l, stack);
	if (p) {
		r = p->data ? 0 : 1;
		if (p->data) {
			len = p->len;
			buf = xstrdup(p->data);
		}
	} else {
		r = read_file(path, &buf, &len);
	}
	if (r < 0) {
		orchd_set_err(err, errlen, "stack %s: cannot read %s: %s", stack, path,
			      strerror(errno));
		goto out;
	}
	if (!r) {
		char *where = xasprintf("stack file %s", path);

		old = orchd_record_load(stack, where, buf, len, err, errlen);
		free(where);
		if (!old)
			goto out;
	}
	if (need_key && orchd_sealer_key(&l->seal, 1, err, errlen))
		goto out;
	o = orchd_record_to_json(&l->seal, stack, old, rec, err, errlen);
	if (!o)
		goto out;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) >= (size_t)MAX_STATE_FILE) {
		/* it could be written, but never read back */
		orchd_set_err(err, errlen,
			      "stack %s: the record is %zu bytes, more than the local engine "
			      "stores (at most %ld MiB): keep large data in files",
			      stack, strlen(s), MAX_STATE_FILE >> 20);
		goto out;
	}
	free(buf);
	buf = xasprintf("%s\n", s);
	pending_push(l, stack, buf, strlen(buf));
	buf = NULL;
	ret = 0;
	/* a batch of big records: do not hold them all in memory */
	if (l->pend_bytes > (size_t)JOURNAL_CHECKPOINT)
		ret = local_sync(e, err, errlen);
out:
	json_object_put(old);
	json_object_put(o);
	free(buf);
	free(path);
	return ret;
}

static int local_write(struct orchd_engine *e, const char *stack,
		       const struct orchd_stack_record *rec, char *err, size_t errlen)
{
	if (local_write_deferred(e, stack, rec, err, errlen) < 0)
		return -1;
	return local_sync(e, err, errlen);
}

/* One journal entry: a header line, the data, a newline. */
static void journal_entry(struct op_buf *b, const struct pending *p)
{
	char hex[ORCHD_SHA256_HEXSZ];
	const char *data = p->data ? p->data : "";

	orchd_sha256_hex(data, p->len, hex);
	op_buf_addf(b, JOURNAL_MAGIC " %c %s %zu %s\n", p->data ? 'w' : 'r', p->stack, p->len, hex);
	op_buf_add(b, data, p->len);
	op_buf_addch(b, '\n');
}

static int journal_open(struct local *l, char *err, size_t errlen)
{
	char *path;
	struct stat st;
	int created;

	if (l->jfd >= 0)
		return 0;
	path = xasprintf("%s/journal", l->dir);
	created = access(path, F_OK) != 0;
	l->jfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (l->jfd < 0 || fstat(l->jfd, &st) < 0 || (created && fsync_dir(l->dir))) {
		orchd_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		if (l->jfd >= 0)
			close(l->jfd);
		l->jfd = -1;
		free(path);
		return -1;
	}
	l->jsize = st.st_size;
	free(path);
	return 0;
}

/* Apply one entry to its stack file: replaced (not fsync'ed: the journal
 * holds it until the checkpoint) or removed.  0 or -1 with err. */
static int apply_entry(struct local *l, const char *stack, const char *data, size_t len, char *err,
		       size_t errlen)
{
	char *path = stack_path(l, stack), *base;
	int ret = 0;

	if (!data) {
		if (unlink(path) < 0 && errno != ENOENT)
			ret = orchd_set_err(err, errlen, "stack %s: cannot remove %s: %s", stack,
					    path, strerror(errno));
		else
			l->stacks_dirty = 1;
		free(path);
		return ret;
	}
	base = xasprintf("%s.json", stack);
	if (atomic_write(l, l->stacks, path, base, data, len, 0, 1, 0)) {
		ret = orchd_set_err(err, errlen, "stack %s: cannot write %s: %s", stack, path,
				    strerror(errno));
		free(path);
	} else {
		ALLOC_GROW(l->hist_dirty, l->hist_nr + 1, l->hist_alloc);
		l->hist_dirty[l->hist_nr++] = path;
	}
	free(base);
	return ret;
}

static int local_flush(struct local *l, char *err, size_t errlen);
static int local_unlock(struct orchd_engine *e, char *err, size_t errlen);

/*
 * Group commit: the pending records go to the journal in one write, made
 * durable by one fdatasync; then each stack file is replaced.  A journal
 * write that fails is cut back to its old length, so that it never holds a
 * torn entry before good ones.
 */
static int local_sync(struct orchd_engine *e, char *err, size_t errlen)
{
	struct local *l = L(e);
	struct op_buf b = OP_BUF_INIT;
	off_t before;
	int ret = -1;

	if (!l->npend)
		return 0;
	if (l->jbroken) {
		orchd_set_err(err, errlen,
			      "cannot write %s/journal: an earlier write failed and could not be "
			      "undone",
			      l->dir);
		goto out;
	}
	if (make_stacks_dir(l)) {
		orchd_set_err(err, errlen, "cannot create %s: %s", l->stacks, strerror(errno));
		goto out;
	}
	if (journal_open(l, err, errlen) < 0)
		goto out;
	for (size_t i = 0; i < l->npend; i++)
		journal_entry(&b, &l->pend[i]);
	if (op_buf_failed(&b))
		errno = op_buf_failed(&b);
	/* where this batch starts: a failure cuts the journal back to it */
	before = lseek(l->jfd, 0, SEEK_END);
	if (before >= 0)
		l->jsize = before;
	if (op_buf_failed(&b) || before < 0 || write_all(l->jfd, b.buf, b.len) ||
	    fdatasync(l->jfd)) {
		int e2 = errno;

		if (l->npend == 1)
			orchd_set_err(err, errlen, "stack %s: cannot write %s/journal: %s",
				      l->pend[0].stack, l->dir, strerror(e2));
		else
			orchd_set_err(err, errlen, "cannot write %s/journal (%zu records): %s",
				      l->dir, l->npend, strerror(e2));
		if (ftruncate(l->jfd, l->jsize) < 0 || fdatasync(l->jfd) < 0)
			l->jbroken = 1;
		goto out;
	}
	l->jsize += (off_t)b.len;
	l->jmine = 1;
	/* durable: now the stack files */
	for (size_t i = 0; i < l->npend; i++)
		if (apply_entry(l, l->pend[i].stack, l->pend[i].data, l->pend[i].len, err, errlen) <
		    0)
			goto out;
	ret = 0;
	if (l->jsize > JOURNAL_CHECKPOINT)
		ret = local_flush(l, err, errlen);
out:
	op_buf_release(&b);
	pending_clear(l);
	return ret;
}

/*
 * After a crash: apply the journal's entries to the stack files, in order,
 * up to a torn one (cut short or failing its SHA-256: never reported
 * stored), make them durable and empty the journal.  Called with the lock.
 */
static int journal_replay(struct local *l, char *err, size_t errlen)
{
	char *path = xasprintf("%s/journal", l->dir), *buf = NULL;
	size_t len = 0, off = 0, applied = 0;
	int r, ret = -1;

	r = read_file_max(path, &buf, &len, MAX_JOURNAL);
	if (r == 1 || (!r && !len)) {
		ret = 0;
		goto out;
	}
	if (r < 0) {
		orchd_set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		char kind, stack[256], want[ORCHD_SHA256_HEXSZ + 1], hex[ORCHD_SHA256_HEXSZ];
		char *nl = memchr(buf + off, '\n', len - off), *data;
		size_t dlen;
		int used = 0;

		if (!nl ||
		    sscanf(buf + off, JOURNAL_MAGIC " %c %255s %zu %64s%n", &kind, stack, &dlen,
			   want, &used) != 4 ||
		    buf + off + used != nl || (kind != 'w' && kind != 'r') ||
		    !orchd_stack_name_ok(stack) || dlen > len - (size_t)(nl + 1 - buf) - 1 ||
		    nl[1 + dlen] != '\n')
			break;
		data = nl + 1;
		orchd_sha256_hex(data, dlen, hex);
		if (strcmp(hex, want))
			break;
		data[dlen] = '\0';
		if (apply_entry(l, stack, kind == 'w' ? data : NULL, dlen, err, errlen) < 0)
			goto out;
		applied++;
		off = (size_t)(data + dlen + 1 - buf);
	}
	if (off < len)
		warning("%s: dropping its last %zu bytes: an entry cut short by a crash (it was "
			"never reported stored)",
			path, len - off);
	if (journal_open(l, err, errlen) < 0)
		goto out;
	l->jsize = (off_t)len;
	l->jmine = 1;
	ret = local_flush(l, err, errlen);
	if (!ret && applied)
		warning("%s: %zu record%s of an interrupted run replayed", path, applied,
			applied == 1 ? "" : "s");
out:
	free(buf);
	free(path);
	return ret;
}

static int local_history_append(struct orchd_engine *e, const char *stack,
				const struct orchd_history_entry *h, char *err, size_t errlen);

/* The record goes; the history stays (the audit trail) and says so. */
static int local_remove(struct orchd_engine *e, const char *stack,
			const struct orchd_history_entry *h, char *err, size_t errlen)
{
	struct local *l = L(e);
	struct pending *p;
	char *path;
	int exists;

	if (check_stack(stack, err, errlen))
		return -1;
	p = pending_of(l, stack);
	path = stack_path(l, stack);
	exists = p ? p->data != NULL : access(path, F_OK) == 0;
	free(path);
	if (!exists)
		return 1;
	/* through the journal, in order with the writes before it */
	pending_push(l, stack, NULL, 0);
	if (local_sync(e, err, errlen) < 0)
		return -1;
	if (h && local_history_append(e, stack, h, err, errlen) < 0)
		return 2; /* the record, the truth, is gone: a warning */
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int local_list(struct orchd_engine *e, char ***names, size_t *n, char *err, size_t errlen)
{
	struct local *l = L(e);
	size_t nr = 0, alloc = 0;
	char **v = NULL;
	struct dirent *d;
	DIR *dir;

	*names = NULL;
	*n = 0;
	dir = opendir(l->stacks);
	if (!dir) {
		if (errno == ENOENT)
			return 0;
		return orchd_set_err(err, errlen, "cannot list %s: %s", l->stacks, strerror(errno));
	}
	while ((d = readdir(dir))) {
		size_t len = strlen(d->d_name);
		char *name;

		if (len <= 5 || strcmp(d->d_name + len - 5, ".json"))
			continue;
		name = xstrndup(d->d_name, len - 5);
		if (!orchd_stack_name_ok(name)) {
			free(name);
			continue;
		}
		ALLOC_GROW(v, nr + 1, alloc);
		v[nr++] = name;
	}
	closedir(dir);
	if (nr)
		qsort(v, nr, sizeof(*v), cmp_str);
	*names = v;
	*n = nr;
	return 0;
}

static int local_history_append(struct orchd_engine *e, const char *stack,
				const struct orchd_history_entry *h, char *err, size_t errlen)
{
	struct local *l = L(e);
	json_object *o;
	struct op_buf sb = OP_BUF_INIT;
	struct stat st;
	char *path;
	int fd, ret = -1, created;

	if (check_stack(stack, err, errlen))
		return -1;
	path = history_path(l, stack);
	if (make_stacks_dir(l)) {
		orchd_set_err(err, errlen, "stack %s: cannot create %s: %s", stack, l->stacks,
			      strerror(errno));
		free(path);
		return -1;
	}
	created = access(path, F_OK) != 0;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		orchd_set_err(err, errlen, "stack %s: cannot open %s: %s", stack, path,
			      strerror(errno));
		free(path);
		return -1;
	}
	o = orchd_history_to_json(h);
	/* After a torn line (a crash mid-append), start on a fresh line. */
	if (!fstat(fd, &st) && st.st_size > 0) {
		char c;

		if (pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n')
			op_buf_addch(&sb, '\n');
	}
	op_buf_addstr(&sb, json_object_to_json_string_ext(
				   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	op_buf_addch(&sb, '\n');
	/* One write(2): O_APPEND makes it land at the end as one piece. */
	if (op_buf_failed(&sb))
		errno = op_buf_failed(&sb);
	if (op_buf_failed(&sb) || write_all(fd, sb.buf, sb.len)) {
		orchd_set_err(err, errlen, "stack %s: cannot append to %s: %s", stack, path,
			      strerror(errno));
		goto out;
	}
	/* Made durable by local_flush() at unlock/close. */
	if (created)
		l->stacks_dirty = 1;
	ALLOC_GROW(l->hist_dirty, l->hist_nr + 1, l->hist_alloc);
	l->hist_dirty[l->hist_nr++] = path;
	path = NULL;
	ret = 0;
out:
	close(fd);
	op_buf_release(&sb);
	json_object_put(o);
	free(path);
	return ret;
}

static int local_history_read(struct orchd_engine *e, const char *stack,
			      struct orchd_history_entry **entries, size_t *n, char *err,
			      size_t errlen)
{
	struct local *l = L(e);
	struct orchd_history_entry *v = NULL;
	size_t nr = 0, alloc = 0, len, lineno = 0;
	char *path, *buf, *p, *end;
	int r;

	*entries = NULL;
	*n = 0;
	if (check_stack(stack, err, errlen))
		return -1;
	path = history_path(l, stack);
	r = read_file(path, &buf, &len);
	if (r) {
		if (r < 0)
			orchd_set_err(err, errlen, "stack %s: cannot read %s: %s", stack, path,
				      strerror(errno));
		free(path);
		return r < 0 ? -1 : 0;
	}
	for (p = buf; p < buf + len; p = end + 1) {
		const char *why;
		json_object *o;

		lineno++;
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			end = buf + len;
		if (end == p)
			continue;
		o = orchd_json_parse_all(p, (size_t)(end - p), &why);
		if (!o || !json_object_is_type(o, json_type_object)) {
			warning("%s:%zu: skipping %s history line", path, lineno,
				end == buf + len ? "torn last" : "unreadable");
			json_object_put(o);
			continue;
		}
		ALLOC_GROW(v, nr + 1, alloc);
		orchd_history_from_json(o, &v[nr++]);
		json_object_put(o);
	}
	free(buf);
	free(path);
	*entries = v;
	*n = nr;
	return 0;
}

/* --- lock ----------------------------------------------------------------- */

static char *this_host(void)
{
	char h[256];

	if (gethostname(h, sizeof(h)))
		return xstrdup("unknown");
	h[sizeof(h) - 1] = '\0';
	return xstrdup(h);
}

static void format_wait(char *buf, size_t len, long ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%lds", ms / 1000);
	else
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
}

static json_object *read_lock_info(struct local *l)
{
	char *path = xasprintf("%s/lock.info", l->dir), *buf;
	json_object *o = NULL;
	const char *why;
	size_t len;

	if (!read_file(path, &buf, &len)) {
		o = orchd_json_parse_all(buf, len, &why);
		free(buf);
		if (o && !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			o = NULL;
		}
	}
	free(path);
	return o;
}

static int local_lock(struct orchd_engine *e, const struct orchd_lock_request *req, char *err,
		      size_t errlen)
{
	struct local *l = L(e);
	long long start = now_ms(), waited;
	char *path, *host, *since, *info_path;
	json_object *info;
	const char *s;
	struct timespec ts;
	int fd;

	if (l->lock_fd >= 0)
		return orchd_set_err(err, errlen,
				     "state directory %s is already locked by this process",
				     l->dir);
	if (orchd_mkdir_p(l->dir, 0700, NULL, 0))
		return orchd_set_err(err, errlen, "cannot create state directory %s: %s", l->dir,
				     strerror(errno));
	path = xasprintf("%s/lock", l->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		orchd_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	for (;;) {
		long long left;

		if (!flock(fd, LOCK_EX | LOCK_NB))
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			orchd_set_err(err, errlen, "cannot lock state directory %s: %s", l->dir,
				      strerror(errno));
			close(fd);
			return -1;
		}
		waited = now_ms() - start;
		left = req->timeout_ms - waited;
		if (left <= 0) {
			char w[32];

			format_wait(w, sizeof(w), req->timeout_ms > 0 ? req->timeout_ms : 0);
			info = read_lock_info(l);
			if (info && op_get_int(info, "pid", 0) > 0) {
				s = op_get_str(info, "run_id");
				orchd_set_err(
					err, errlen,
					"state directory %s is locked by pid %lld on host %s since "
					"%s%s%s%s; waited %s",
					l->dir, (long long)op_get_int(info, "pid", 0),
					op_get_str(info, "host") ? op_get_str(info, "host") : "?",
					op_get_str(info, "since") ? op_get_str(info, "since") : "?",
					s ? " (run " : "", s ? s : "", s ? ")" : "", w);
			} else {
				orchd_set_err(err, errlen,
					      "state directory %s is locked by another process (no "
					      "holder "
					      "record); waited %s",
					      l->dir, w);
			}
			json_object_put(info);
			close(fd);
			return -1;
		}
		struct timespec nap = {0, (left < LOCK_POLL_MS ? left : LOCK_POLL_MS) * 1000000L};
		nanosleep(&nap, NULL);
	}

	/* We hold the flock: a leftover holder record is stale. */
	host = this_host();
	info = read_lock_info(l);
	if (info) {
		long long pid = op_get_int(info, "pid", 0);

		s = op_get_str(info, "host");
		if (pid > 0 && s && !strcmp(s, host) && kill((pid_t)pid, 0) && errno == ESRCH)
			warning("taking over stale lock of pid %lld", pid);
		json_object_put(info);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	since = iso_time(ts.tv_sec);
	info = json_object_new_object();
	json_object_object_add(info, "pid", json_object_new_int64(getpid()));
	orchd_json_add_str(info, "host", host);
	orchd_json_add_str(info, "since", since);
	json_object_object_add(
		info, "since_ms",
		json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
	orchd_json_add_str(info, "run_id", req->run_id);
	orchd_json_add_str(info, "command", req->command);
	s = json_object_to_json_string_ext(info,
					   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	info_path = xasprintf("%s/lock.info", l->dir);
	if (atomic_write(l, l->dir, info_path, "lock.info", s, strlen(s), 0, 0, 1)) {
		orchd_set_err(err, errlen, "cannot write %s: %s", info_path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(info_path);
	json_object_put(info);
	free(since);
	free(host);
	if (fd < 0)
		return -1;
	l->lock_fd = fd;
	/* what a crashed run left in the journal, before anything is read */
	if (journal_replay(l, err, errlen) < 0) {
		char ignored[64];

		local_unlock(e, ignored, sizeof(ignored));
		return -1;
	}
	return 0;
}

/*
 * Make every write of this engine since the last flush durable: the dirty
 * history files, the stack files written through the journal and the
 * stacks directory (renames, new files), then empty the journal.  Few dirty
 * files get an fsync each; many get one syncfs(2) of the file system, which
 * is one journal commit instead of one per file.  Errors name what could
 * not be synced; the list is cleared either way.
 */
static int local_flush(struct local *l, char *err, size_t errlen)
{
	int ret = 0;

	if (l->hist_nr >= HIST_SYNCFS_MIN) {
		int fd = open(l->stacks, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || syncfs(fd))
			ret = orchd_set_err(err, errlen, "cannot sync %s: %s", l->stacks,
					    strerror(errno));
		if (fd >= 0)
			close(fd);
		l->stacks_dirty = 0;
	} else {
		for (size_t i = 0; i < l->hist_nr && !ret; i++) {
			int fd = open(l->hist_dirty[i], O_RDONLY | O_CLOEXEC);

			if ((fd < 0 && errno != ENOENT) || (fd >= 0 && fsync(fd)))
				ret = orchd_set_err(err, errlen, "cannot sync %s: %s",
						    l->hist_dirty[i], strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
	if (!ret && l->stacks_dirty) {
		if (fsync_dir(l->stacks) && errno != ENOENT)
			ret = orchd_set_err(err, errlen, "cannot sync %s: %s", l->stacks,
					    strerror(errno));
		l->stacks_dirty = 0;
	}
	for (size_t i = 0; i < l->hist_nr; i++)
		free(l->hist_dirty[i]);
	l->hist_nr = 0;
	/* every stack file of the journal is durable: the checkpoint */
	if (!ret && l->jfd >= 0 && l->jmine) {
		if (ftruncate(l->jfd, 0) < 0 || fdatasync(l->jfd) < 0) {
			ret = orchd_set_err(err, errlen, "cannot empty %s/journal: %s", l->dir,
					    strerror(errno));
		} else {
			l->jsize = 0;
			l->jmine = 0;
		}
	}
	return ret;
}

static int local_unlock(struct orchd_engine *e, char *err, size_t errlen)
{
	struct local *l = L(e);
	char *path;
	int ret;

	/* Durable before the next run may take the lock. */
	ret = local_sync(e, err, errlen);
	if (local_flush(l, ret ? NULL : err, ret ? 0 : errlen) < 0 && !ret)
		ret = -1;
	if (l->lock_fd < 0)
		return ret;
	/* Remove the holder record while still holding the flock. */
	path = xasprintf("%s/lock.info", l->dir);
	if (unlink(path) && errno != ENOENT && !ret)
		ret = orchd_set_err(err, errlen, "cannot remove %s: %s", path, strerror(errno));
	free(path);
	close(l->lock_fd);
	l->lock_fd = -1;
	return ret;
}

static void local_close(struct orchd_engine *e)
{
	struct local *l = L(e);
	char buf[256];

	if (local_unlock(e, buf, sizeof(buf)))
		error("%s", buf);
	free(l->hist_dirty);
	pending_clear(l);
	free(l->pend);
	if (l->jfd >= 0)
		close(l->jfd);
	orchd_sealer_release(&l->seal);
	free(l->dir);
	free(l->stacks);
	free(l);
	free(e->state_dir);
	free(e->pipeline_name);
	free(e);
}

static const struct orchd_engine_ops local_ops = {
	.name = "local",
	.select = local_select,
	.lock = local_lock,
	.unlock = local_unlock,
	.read = local_read,
	.write = local_write,
	.write_deferred = local_write_deferred,
	.sync = local_sync,
	.remove = local_remove,
	.list = local_list,
	.history_append = local_history_append,
	.history_read = local_history_read,
	.close = local_close,
};

int orchd_local_engine_open(const char *state_dir, struct orchd_engine **out, char *err,
			    size_t errlen)
{
	struct orchd_engine *e;
	struct local *l;
	char *owner, *doc;
	int r;

	*out = NULL;
	if (!state_dir || !*state_dir)
		return orchd_set_err(err, errlen, "no state directory");
	l = xcalloc(1, sizeof(*l));
	owner = xasprintf("state directory %s", state_dir);
	doc = xasprintf("%s/crypto.json", state_dir);
	r = orchd_sealer_init(&l->seal, owner, doc, err, errlen);
	free(owner);
	free(doc);
	if (r) {
		free(l);
		return -1;
	}
	l->seal.load = crypto_load;
	l->seal.store = crypto_store;
	l->seal.ctx = l;
	l->dir = xstrdup(state_dir);
	l->stacks = xasprintf("%s/stacks", state_dir);
	l->lock_fd = -1;
	l->jfd = -1;
	e = xcalloc(1, sizeof(*e));
	e->ops = &local_ops;
	e->priv = l;
	e->state_dir = xstrdup(state_dir);
	*out = e;
	return 0;
}
