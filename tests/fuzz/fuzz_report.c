/*
 * fuzz_report: a stored report.json as `orchd report` reads it (anyone may
 * have edited the file): orchd_report_render() into each format, HTML,
 * JUnit, trace and metrics.
 *
 * Input: JSON text (parsed with json-c, nesting up to 64 as orchd does);
 * what does not parse, or is not an object, is skipped.  The logs come
 * from a callback that returns a fixed text with markup and invalid UTF-8,
 * never from files.
 *
 * Checks: no crash, leak or undefined behaviour, whatever the members'
 * types (strings where numbers are expected, nulls in arrays, dependency
 * cycles, negative or huge times); a report the renderer refuses gives
 * NULL for every format, one it takes gives non-NULL text for every format,
 * and the XML and HTML texts hold no raw '<' from the log.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/report.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOG_MARK "<fuzz-mark>"

static char *fuzz_log(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	return xstrdup("info line\nwarning: w\nerror: e " LOG_MARK " \xff\xfe end\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum orchd_report_format fmts[] = {ORCHD_REPORT_HTML, ORCHD_REPORT_JUNIT,
							ORCHD_REPORT_TRACE, ORCHD_REPORT_METRICS};
	struct json_tokener *tok;
	json_object *rep;
	int taken = -1;

	if (size > (1 << 20))
		return 0;
	tok = json_tokener_new_ex(64);
	CHECK(tok);
	rep = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(rep, json_type_object)) {
		json_object_put(rep);
		json_tokener_free(tok);
		return 0;
	}
	json_tokener_free(tok);
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		char *x = orchd_report_render(rep, fmts[i], fuzz_log, NULL);

		/* the same verdict for every format */
		CHECK(taken < 0 || taken == (x != NULL));
		taken = x != NULL;
		if (x && (fmts[i] == ORCHD_REPORT_HTML || fmts[i] == ORCHD_REPORT_JUNIT))
			CHECK(!strstr(x, LOG_MARK));
		free(x);
	}
	json_object_put(rep);
	return 0;
}
