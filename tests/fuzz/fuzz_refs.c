/*
 * fuzz_refs: the reference grammar of orchestrator/core/refs.c,
 * orchd_ref_parse() on `${{ TYPE.NAME.outputs.KEY }}`, `$${{` escapes and
 * plain text.
 *
 * Input: the whole input is one string, passed as s[0..len) in a buffer of
 * exactly len bytes (no NUL after it: the API takes a length, so a read
 * past the end is an ASan report).
 *
 * Checks:
 *   - parts alternate literal/reference as documented (adjacent literal text
 *     forms one part), nrefs counts the references, every reference has a
 *     TYPE.NAME target and a KEY of the allowed characters, and its text
 *     starts with "${{" and ends with "}}";
 *   - orchd_ref_parsed_text() is the concatenation of the parts;
 *   - without references and escapes, a successful parse gives back the
 *     input unchanged;
 *   - a successful parse is stable: writing the parts back (literal "${{"
 *     escaped as "$${{", references as written) and parsing again gives the
 *     same parts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/refs.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_ok(const char *s, size_t len, int dot)
{
	if (!len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || (dot && c == '.')))
			return 0;
	}
	return 1;
}

static void check_shape(const struct orchd_ref_parsed *r)
{
	size_t nrefs = 0, nloads = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct orchd_ref_part *p = &r->parts[i];

		CHECK(p->text);
		CHECK(strlen(p->text) <= p->len);
		if (p->ns) {
			/* ${{ params|vars|env.X }}: as written, its name in key */
			nloads++;
			CHECK(!p->is_ref && !p->target && p->key && *p->key);
			CHECK(p->len >= 5 && !memcmp(p->text, "${{", 3) &&
			      !memcmp(p->text + p->len - 2, "}}", 2));
			continue;
		}
		if (!p->is_ref) {
			CHECK(p->len > 0);
			CHECK(!p->target && !p->key);
			CHECK(i == 0 || r->parts[i - 1].is_ref || r->parts[i - 1].ns);
			continue;
		}
		nrefs++;
		CHECK(p->target && p->key);
		CHECK(p->len >= 5 && !memcmp(p->text, "${{", 3) &&
		      !memcmp(p->text + p->len - 2, "}}", 2));
		{
			const char *dot = strchr(p->target, '.');

			CHECK(dot && dot > p->target);
			CHECK(name_ok(p->target, (size_t)(dot - p->target), 0));
			CHECK(name_ok(dot + 1, strlen(dot + 1), 1));
		}
		CHECK(name_ok(p->key, strlen(p->key), 0));
	}
	CHECK(nrefs == r->nrefs);
	CHECK(nloads == r->nloads);
}

/* The parts written back as a string that parses to them. */
static char *unparse(const struct orchd_ref_parsed *r, size_t *len)
{
	size_t n = 0, k = 0;
	char *s;

	for (size_t i = 0; i < r->n; i++)
		n += 2 * r->parts[i].len; /* at worst "${{" -> "$${{" everywhere */
	s = malloc(n + 1);
	CHECK(s);
	for (size_t i = 0; i < r->n; i++) {
		const struct orchd_ref_part *p = &r->parts[i];

		for (size_t j = 0; j < p->len; j++) {
			if (!p->is_ref && !p->ns && j + 2 < p->len &&
			    !memcmp(p->text + j, "${{", 3))
				s[k++] = '$';
			s[k++] = p->text[j];
		}
	}
	s[k] = '\0';
	*len = k;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct orchd_ref_parsed r, r2;
	char err[512], err2[512], *s, *text, *back;
	size_t tlen, blen;
	int rc;

	s = malloc(size ? size : 1);
	CHECK(s);
	if (size)
		memcpy(s, data, size);
	err[0] = '\0';
	rc = orchd_ref_parse(s, size, &r, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc)
		CHECK(err[0] != '\0');
	check_shape(&r);
	text = orchd_ref_parsed_text(&r, &tlen);
	{
		size_t n = 0;

		for (size_t i = 0; i < r.n; i++) {
			CHECK(!memcmp(text + n, r.parts[i].text, r.parts[i].len));
			n += r.parts[i].len;
		}
		CHECK(n == tlen);
	}
	if (!rc && !r.nrefs && !r.has_escape)
		CHECK(tlen == size && !memcmp(text, data, size));
	if (!rc) {
		back = unparse(&r, &blen);
		CHECK(orchd_ref_parse(back, blen, &r2, err2, sizeof(err2)) == 0);
		CHECK(r2.n == r.n && r2.nrefs == r.nrefs);
		for (size_t i = 0; i < r.n; i++) {
			CHECK(r2.parts[i].is_ref == r.parts[i].is_ref);
			CHECK(r2.parts[i].ns == r.parts[i].ns);
			CHECK(r2.parts[i].len == r.parts[i].len);
			CHECK(!memcmp(r2.parts[i].text, r.parts[i].text, r.parts[i].len));
			if (r.parts[i].is_ref) {
				CHECK(!strcmp(r2.parts[i].target, r.parts[i].target));
				CHECK(!strcmp(r2.parts[i].key, r.parts[i].key));
			}
		}
		orchd_ref_parsed_release(&r2);
		free(back);
	}
	free(text);
	orchd_ref_parsed_release(&r);
	free(s);
	return 0;
}
