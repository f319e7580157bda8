/*
 * core/sources: the sources of an instance -- git checkouts and verified
 * downloads that the core fetches into the private working directory of
 * an extension, so that no extension re-implements git or HTTP
 * (the shared utilities of README's "Concepts").
 *
 * Two ways in:
 *
 *   - the pipeline: an instance declares `sources:`, a list of source
 *     specs (common/fetch.h); bootstrap validates them at load time and the
 *     supervisor fetches all of them into the step's workdir before the
 *     extension starts (orchd_sources_fetch_all(), see the sources of a
 *     step in handlers/extension.h), for every action except describe.
 *     The pipeline author is trusted: file:// and local paths are
 *     allowed.
 *
 *   - the protocol: an extension sends {"type":"request","op":"fetch",
 *     "id":N,"source":{...}} (protocol/PROTOCOL.md, "request") and the
 *     supervisor answers with the line orchd_sources_request() returns.
 *     The extension is not trusted: only http://, https:// and git:// URLs,
 *     and the destination must stay inside its workdir (relative, no ".."
 *     segment, no symbolic link on the way).
 *
 * Fetching is synchronous: it blocks the caller until the checkout or
 * download is done, so the supervisor calls these functions on its worker
 * thread (core/worker.h), never on the event loop; opts->http.cancel and
 * opts->git.cancel stop a fetch in flight.  Downloads and mirrors are
 * cached (common/http.h, common/git.h), so a repeated fetch is cheap.
 * Thread-safety: the functions share nothing but those caches (files
 * written to a temporary name and renamed).
 *
 * Error convention: functions return 0 or -1 with a lowercase message in
 * err[errlen]; they never exit.  json-c ownership: every json_object
 * argument is borrowed (never put).
 */
#ifndef ORCHD_CORE_SOURCES_H
#define ORCHD_CORE_SOURCES_H

#include <stddef.h>

#include <json-c/json.h>

#include "fetch.h"

/*
 * A short description of a source for messages, malloc'ed (any password
 * in the URL masked):  "git URL@REF"  or  "url URL"  ("source" when spec
 * is neither).
 */
char *orchd_source_describe(const json_object *spec);

/* One line about a fetched source, e.g.
 *   "source sources[0]: git https://h/app.git@v1 -> src (commit 4b825dc642cb)"
 *   "source sources[1]: url https://h/f.tgz -> f.tgz (sha256 9f86d081884c)" */
typedef void (*orchd_sources_log_fn)(void *data, const char *line);

/*
 * Fetch every source of the array sources (NULL or empty: nothing) into
 * workdir, in order, stopping at the first failure:
 *   "source sources[1] (url https://h/f.tgz): sha256 mismatch for ..."
 * opts NULL: the defaults.  log (may be NULL) is called after each fetch.
 */
int orchd_sources_fetch_all(const json_object *sources, const char *workdir,
			    const struct orchd_fetch_opts *opts, orchd_sources_log_fn log,
			    void *log_data, char *err, size_t errlen);

/*
 * Check a source an extension asks for (on top of orchd_fetch_validate()):
 * the URL must start with http://, https:// or (git only) git://, and no
 * existing component of its destination under workdir may be a symbolic
 * link or a non-directory.  Messages:
 *   "source not allowed: 'git' must start with http://, https:// or git://"
 *   "source not allowed: 'path' goes through the symbolic link 'a'"
 */
int orchd_sources_check_request(const json_object *spec, const char *workdir, char *err,
				size_t errlen);

/*
 * Answer a validated request message (op_validate_message() accepted it)
 * from an extension whose workdir is workdir: fetch for op "fetch", else
 * refuse.  Returns the response line to queue on the extension's stdin
 * (malloc'ed, ends in '\n', as op_encode()), never NULL (dies on OOM):
 *   {"type":"response","id":N,"ok":true,"result":{"type":"git",
 *    "path":"src","commit":HEX}}        (path relative to workdir)
 *   {"type":"response","id":N,"ok":false,"error":"unknown request op 'x'"}
 */
char *orchd_sources_request(const json_object *req, const char *workdir,
			    const struct orchd_fetch_opts *opts);

/* The response line refusing req (any op) with error (e.g. "cancelled"). */
char *orchd_sources_refuse(const json_object *req, const char *error);

#endif
