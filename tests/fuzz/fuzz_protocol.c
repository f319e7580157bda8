/*
 * fuzz_protocol: the protocol line splitter (protocol/framing.c) and the
 * message codec (protocol/codec.c, encode.c, run.c's op_encode_log_into).
 *
 * Input: byte 0 selects the splitter mode (bit 0: STRICT or CHUNK), the
 * direction of the messages (bit 1: to or from the extension) and max_line
 * (bits 2-4: OP_MAX_LINE or a small cap, so that over-long lines happen);
 * byte 1 seeds the generator of chunk sizes; the rest is the stream, fed
 * to the splitter in chunks of 1 to 4096 bytes.
 *
 * Checks:
 *   - the splitter returns exactly the lines of a straightforward model of
 *     its contract (orchd_protocol.h, "Framing"): same statuses, same bytes,
 *     whatever the chunking, and it is done after finish;
 *   - every line (when max_line is at least 16: shorter caps test the
 *     splitter alone, at a line per byte) goes through op_parse_line(); a valid message re-encoded
 *     by op_encode() is one line ending in '\n' that parses again as the
 *     same type and an equal JSON object;
 *   - every line encoded as a log message by op_encode_log_into() parses as
 *     a valid log; for valid UTF-8 the message is the line itself and the
 *     bytes are those of op_encode_log().
 * Deterministic: the chunk sizes come from the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orchd_protocol.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t small_caps[8] = {0, 1, 2, 3, 7, 16, 64, 255};

/* One expected line of the model. */
struct want {
	enum op_line_status st;
	const uint8_t *p;
	size_t len;
};

struct model {
	struct want *v;
	size_t n, alloc, next;
};

static void model_add(struct model *m, enum op_line_status st, const uint8_t *p, size_t len)
{
	if (m->n == m->alloc) {
		m->alloc = m->alloc ? 2 * m->alloc : 16;
		m->v = realloc(m->v, m->alloc * sizeof(*m->v));
		CHECK(m->v);
	}
	m->v[m->n].st = st;
	m->v[m->n].p = p;
	m->v[m->n].len = len;
	m->n++;
}

/*
 * The contract: a line of at most max bytes is one OK line (an empty last
 * segment, after the last '\n', is none); a longer one is, in CHUNK mode,
 * chunks of max bytes then the rest (1..max bytes), in STRICT mode one
 * TOO_LONG with its first max bytes.
 */
static void model_build(struct model *m, const uint8_t *s, size_t n, size_t max, int chunk)
{
	size_t i = 0;

	while (i < n) {
		const uint8_t *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : n - i;

		if (len <= max) {
			model_add(m, OP_LINE_OK, s + i, len);
		} else if (chunk) {
			size_t k = 0;

			while (len - k > max) {
				model_add(m, OP_LINE_OK, s + i + k, max);
				k += max;
			}
			model_add(m, OP_LINE_OK, s + i + k, len - k);
		} else {
			model_add(m, OP_LINE_TOO_LONG, s + i, max);
		}
		i += len + (nl ? 1 : 0);
	}
}

static void check_message(enum op_direction dir, const char *line, size_t len)
{
	struct op_parsed a, b;
	char *enc;

	CHECK(op_parse_line(dir, line, len, &a) == 0);
	CHECK(a.verdict >= OP_EMPTY && a.verdict <= OP_PROTOCOL_ERROR);
	if (a.verdict == OP_PROTOCOL_ERROR)
		CHECK(a.error[0] != '\0');
	if (a.verdict != OP_VALID) {
		CHECK(a.msg == NULL);
		op_parsed_release(&a);
		return;
	}
	CHECK(a.msg && a.type != OP_MSG_NONE);
	enc = op_encode(a.msg);
	if (!enc) {
		CHECK(errno == E2BIG);
		op_parsed_release(&a);
		return;
	}
	{
		size_t n = strlen(enc);

		CHECK(n > 0 && enc[n - 1] == '\n');
		CHECK(memchr(enc, '\n', n - 1) == NULL);
		CHECK(op_parse_line(dir, enc, n - 1, &b) == 0);
	}
	CHECK(b.verdict == OP_VALID);
	CHECK(b.type == a.type);
	CHECK(json_object_equal(a.msg, b.msg));
	op_parsed_release(&b);
	op_parsed_release(&a);
	free(enc);
}

static void check_log(const char *line, size_t len)
{
	struct op_buf sb = OP_BUF_INIT;
	struct op_parsed p;
	const char *msg;

	if (op_encode_log_into(&sb, "info", line, len) < 0) {
		CHECK(errno == E2BIG && sb.len == 0);
		op_buf_release(&sb);
		return;
	}
	CHECK(sb.len > 0 && sb.buf[sb.len - 1] == '\n');
	CHECK(memchr(sb.buf, '\n', sb.len - 1) == NULL);
	CHECK(op_parse_line(OP_FROM_EXT, sb.buf, sb.len - 1, &p) == 0);
	CHECK(p.verdict == OP_VALID && p.type == OP_MSG_LOG);
	msg = op_get_str(p.msg, "message");
	CHECK(msg);
	if (op_utf8_valid(line, len)) {
		char *s = malloc(len + 1), *enc;

		CHECK(s);
		memcpy(s, line, len);
		s[len] = '\0';
		CHECK(strlen(msg) == len && !memcmp(msg, line, len));
		enc = op_encode_log("info", s);
		CHECK(enc && !strcmp(enc, op_buf_str(&sb)));
		free(enc);
		free(s);
	}
	op_parsed_release(&p);
	op_buf_release(&sb);
}

static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void pull(struct op_splitter *sp, struct model *m, enum op_direction dir, size_t max)
{
	int codec = max >= 16;

	const char *line;
	size_t len;
	enum op_line_status st;

	while ((st = op_splitter_next(sp, &line, &len)) != OP_LINE_NONE) {
		const struct want *w;

		CHECK(m->next < m->n);
		w = &m->v[m->next++];
		CHECK(st == w->st);
		CHECK(len == w->len && !memcmp(line, w->p, len));
		CHECK(len <= max && line[len] == '\0');
		if (codec && st == OP_LINE_OK) {
			check_message(dir, line, len);
			check_log(line, len);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m = {NULL, 0, 0, 0};
	struct op_splitter *sp;
	enum op_split_mode mode;
	enum op_direction dir;
	size_t cap, max, off = 0;
	uint32_t x;

	if (size < 2)
		return 0;
	mode = (data[0] & 1) ? OP_SPLIT_CHUNK : OP_SPLIT_STRICT;
	dir = (data[0] & 2) ? OP_FROM_EXT : OP_TO_EXT;
	cap = small_caps[(data[0] >> 2) & 7];
	max = cap ? cap : OP_MAX_LINE;
	x = 0x9e3779b9u ^ ((uint32_t)data[1] * 0x01000193u);
	data += 2;
	size -= 2;

	model_build(&m, data, size, max, mode == OP_SPLIT_CHUNK);
	sp = op_splitter_new(cap, mode);
	CHECK(sp);
	while (off < size) {
		uint32_t r = next_rand(&x);
		size_t n = (r & 0x300) ? 1 + (r & 15) : 1 + (r >> 20) % 4096;

		if (n > size - off)
			n = size - off;
		CHECK(op_splitter_feed(sp, data + off, n) == 0);
		off += n;
		pull(sp, &m, dir, max);
	}
	op_splitter_finish(sp);
	pull(sp, &m, dir, max);
	CHECK(op_splitter_done(sp));
	CHECK(m.next == m.n);
	op_splitter_free(sp);
	free(m.v);
	return 0;
}
