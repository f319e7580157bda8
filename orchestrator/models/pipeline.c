/* models/pipeline: helpers over the pipeline model (see pipeline.h). */
#include <ctype.h>
#include <string.h>

#include "models/pipeline.h"
#include "orchd_protocol.h"
#include "util.h"

void orchd_exec_set_defaults(struct orchd_exec *e)
{
	e->max_attempts = 1;
	e->timeout_ms = 0;
	e->backoff_initial_ms = 1000;
	e->backoff_max_ms = 60000;
	e->backoff_factor = 2.0;
	e->grace_ms = 10000;
	e->handshake_ms = 30000;
	memset(&e->limits, 0, sizeof(e->limits));
	e->limits.pids = 4096;
	e->runs_on[0] = '\0';
	e->set = 0;
}

int orchd_label_ok(const char *s, size_t len)
{
	if (!len || len > 63 || strlen(s) != len || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_./-", s[i]))
			return 0;
	return 1;
}

static const char **concat(char *const *a, size_t na, char *const *b, size_t nb, size_t *n)
{
	const char **v = xcalloc(na + nb + 1, sizeof(*v));

	for (size_t i = 0; i < na; i++)
		v[i] = a[i];
	for (size_t i = 0; i < nb; i++)
		v[na + i] = b[i];
	*n = na + nb;
	return v;
}

void orchd_isolation_merge(const struct orchd_isolation *core, const struct orchd_isolation *in,
			   struct orchd_isolation *out)
{
	*out = *core;
	if (in->set & ORCHD_ISO_LEVEL)
		out->level = in->level;
	if (in->set & ORCHD_ISO_NETWORK)
		out->network_none = in->network_none;
	out->set = core->set | in->set;
	out->read =
		(char **)(void *)concat(core->read, core->nread, in->read, in->nread, &out->nread);
	out->write = (char **)(void *)concat(core->write, core->nwrite, in->write, in->nwrite,
					     &out->nwrite);
}

void orchd_isolation_release(struct orchd_isolation *iso)
{
	for (size_t i = 0; i < iso->nread; i++)
		free(iso->read[i]);
	for (size_t i = 0; i < iso->nwrite; i++)
		free(iso->write[i]);
	free(iso->read);
	free(iso->write);
	iso->read = iso->write = NULL;
	iso->nread = iso->nwrite = 0;
}

void orchd_exec_merge(struct orchd_exec *base, const struct orchd_exec *over)
{
	if (over->set & ORCHD_EXEC_MAX_ATTEMPTS)
		base->max_attempts = over->max_attempts;
	if (over->set & ORCHD_EXEC_TIMEOUT)
		base->timeout_ms = over->timeout_ms;
	if (over->set & ORCHD_EXEC_BACKOFF_INITIAL)
		base->backoff_initial_ms = over->backoff_initial_ms;
	if (over->set & ORCHD_EXEC_BACKOFF_MAX)
		base->backoff_max_ms = over->backoff_max_ms;
	if (over->set & ORCHD_EXEC_BACKOFF_FACTOR)
		base->backoff_factor = over->backoff_factor;
	if (over->set & ORCHD_EXEC_GRACE)
		base->grace_ms = over->grace_ms;
	if (over->set & ORCHD_EXEC_HANDSHAKE)
		base->handshake_ms = over->handshake_ms;
	if (over->set & ORCHD_EXEC_LIMIT_MEMORY)
		base->limits.memory = over->limits.memory;
	if (over->set & ORCHD_EXEC_LIMIT_PIDS)
		base->limits.pids = over->limits.pids;
	if (over->set & ORCHD_EXEC_LIMIT_CPU)
		base->limits.cpu_time_ms = over->limits.cpu_time_ms;
	if (over->set & ORCHD_EXEC_LIMIT_FILES)
		base->limits.open_files = over->limits.open_files;
	if (over->set & ORCHD_EXEC_LIMIT_OUTPUT)
		base->limits.output_bytes = over->limits.output_bytes;
	if (over->set & ORCHD_EXEC_RUNS_ON)
		memcpy(base->runs_on, over->runs_on, sizeof(base->runs_on));
	base->set |= over->set;
}

/* The index: ids to instance indices, and each bare name to the index of
 * the only instance of that name, or AMBIGUOUS when several share it.  Its
 * keys are the instances' own strings. */
#define AMBIGUOUS ((size_t)-2)

struct orchd_pipeline_index {
	struct orchd_map ids, names;
};

static void index_free(struct orchd_pipeline_index *x)
{
	if (!x)
		return;
	orchd_map_release(&x->ids);
	orchd_map_release(&x->names);
	free(x);
}

void orchd_pipeline_index(struct orchd_pipeline *p)
{
	struct orchd_pipeline_index *x = xcalloc(1, sizeof(*x));
	size_t i;

	for (i = 0; i < p->ninst; i++) {
		struct orchd_instance *in = &p->inst[i];
		size_t *v;
		int added;

		orchd_map_put(&x->ids, in->id, i, NULL);
		v = orchd_map_put(&x->names, in->name, i, &added);
		if (!added)
			*v = AMBIGUOUS;
	}
	index_free(p->index);
	p->index = x;
}

static size_t find_linear(const struct orchd_pipeline *p, const char *ref, int *ambiguous)
{
	size_t i, found = (size_t)-1;

	if (strchr(ref, '.')) {
		for (i = 0; i < p->ninst; i++)
			if (!strcmp(p->inst[i].id, ref))
				return i;
	}
	for (i = 0; i < p->ninst; i++) {
		if (strcmp(p->inst[i].name, ref))
			continue;
		if (found != (size_t)-1) {
			if (ambiguous)
				*ambiguous = 1;
			return (size_t)-1;
		}
		found = i;
	}
	return found;
}

size_t orchd_pipeline_find(const struct orchd_pipeline *p, const char *ref, int *ambiguous)
{
	size_t *v;

	if (ambiguous)
		*ambiguous = 0;
	if (!p->index)
		return find_linear(p, ref, ambiguous);
	/* An id (the type has no dot, so "a.b" may be type a, name b). */
	if (strchr(ref, '.') && (v = orchd_map_get(&p->index->ids, ref)))
		return *v;
	v = orchd_map_get(&p->index->names, ref);
	if (!v)
		return (size_t)-1;
	if (*v == AMBIGUOUS) {
		if (ambiguous)
			*ambiguous = 1;
		return (size_t)-1;
	}
	return *v;
}

const char *orchd_pos_file(const struct orchd_pipeline *p, struct orchd_pos pos)
{
	if (pos.file < p->nfiles)
		return p->files[pos.file].path;
	return p->file;
}

char *orchd_pos_where(const struct orchd_pipeline *p, struct orchd_pos pos)
{
	struct op_buf sb = OP_BUF_INIT;
	size_t f = pos.file, hops = 0;

	op_buf_addf(&sb, "%s:%u:%u", orchd_pos_file(p, pos), pos.line, pos.column);
	while (f < p->nfiles && p->files[f].parent < p->nfiles && hops++ < p->nfiles) {
		const struct orchd_source_file *sf = &p->files[f];

		op_buf_addf(&sb, "%s %s:%u:%u", hops == 1 ? " (imported at" : ", imported at",
			    p->files[sf->parent].path, sf->at.line, sf->at.column);
		f = sf->parent;
	}
	if (hops)
		op_buf_addch(&sb, ')');
	return op_buf_detach(&sb, NULL);
}

char *orchd_instance_stack(const struct orchd_pipeline *p, const struct orchd_instance *in)
{
	return xasprintf("%s-%s-%s", p->core.stack ? p->core.stack : "dev", in->type, in->name);
}

/* Merge src into dst (both objects): objects merge key by key, src wins. */
static void deep_merge(json_object *dst, json_object *src)
{
	json_object_object_foreach(src, key, sval)
	{
		json_object *dval;

		if (json_object_is_type(sval, json_type_object) &&
		    json_object_object_get_ex(dst, key, &dval) &&
		    json_object_is_type(dval, json_type_object)) {
			deep_merge(dval, sval);
			continue;
		}
		json_object_object_add(dst, key, json_object_get(sval));
	}
}

json_object *orchd_instance_config(const struct orchd_pipeline *p, const struct orchd_instance *in)
{
	json_object *def = NULL, *out = NULL;

	if (p->core.type_defaults)
		json_object_object_get_ex(p->core.type_defaults, in->type, &def);
	if (def && json_object_is_type(def, json_type_object)) {
		if (json_object_deep_copy(def, &out, NULL) < 0)
			die("out of memory");
	} else {
		out = json_object_new_object();
	}
	if (!out)
		die("out of memory");
	if (in->config_json) {
		json_object *own = orchd_instance_own_config(in);

		if (!json_object_object_length(out)) {
			json_object_put(out);
			return own;
		}
		deep_merge(out, own);
		json_object_put(own);
	}
	return out;
}

json_object *orchd_instance_own_config(const struct orchd_instance *in)
{
	json_object *o = NULL;

	if (in->config_json)
		o = orchd_json_from_text(in->config_json, strlen(in->config_json));
	if (!o)
		o = json_object_new_object();
	if (!o)
		die("out of memory");
	return o;
}

json_object *orchd_json_from_text(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(ORCHD_JSON_DEPTH);
	json_object *o;

	if (!tok)
		die("out of memory");
	/*
	 * A scalar at the very end of the input ("16", "true") may still go
	 * on, so json-c answers json_tokener_continue; the NUL that ends the
	 * text (counted in the length) tells it the value is complete.
	 */
	o = json_tokener_parse_ex(tok, text, (int)len + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) < len)
		die("internal error: JSON the core made does not parse: %s",
		    json_tokener_error_desc(json_tokener_get_error(tok)));
	json_tokener_free(tok);
	return o;
}

void orchd_instance_release(struct orchd_instance *in)
{
	size_t i;

	free(in->type);
	free(in->name);
	free(in->id);
	for (i = 0; i < in->ndepends; i++)
		free(in->depends_on[i]);
	free(in->depends_on);
	free(in->depends_pos);
	free(in->deps);
	for (i = 0; i < in->nrefs; i++) {
		free(in->refs[i].target);
		free(in->refs[i].key);
		free(in->refs[i].path);
	}
	free(in->refs);
	for (i = 0; i < in->nsites; i++) {
		struct orchd_ref_site *site = &in->sites[i];

		for (size_t k = 0; k < site->nloc; k++)
			free(site->loc[k].key);
		free(site->loc);
		for (size_t k = 0; k < site->nparts; k++)
			free(site->parts[k].text);
		free(site->parts);
	}
	free(in->sites);
	free(in->config_json);
	orchd_isolation_release(&in->isolation);
	json_object_put(in->mock_outputs);
	json_object_put(in->sources);
	for (i = 0; i < in->npass_env; i++)
		free(in->pass_env[i]);
	free(in->pass_env);
	for (i = 0; i < in->nwatch; i++)
		free(in->watch[i]);
	free(in->watch);
}

void orchd_pipeline_free(struct orchd_pipeline *p)
{
	size_t i;

	if (!p)
		return;
	free(p->file);
	for (i = 0; i < p->nfiles; i++)
		free(p->files[i].path);
	free(p->files);
	free(p->env);
	free(p->name);
	free(p->core.stack);
	free(p->core.state_dir);
	free(p->core.engine.backend);
	free(p->core.engine.project);
	for (i = 0; i < p->core.engine.nendpoints; i++)
		free(p->core.engine.endpoints[i]);
	free(p->core.engine.endpoints);
	free(p->core.engine.prefix);
	free(p->core.engine.ca_file);
	free(p->core.engine.cert_file);
	free(p->core.engine.key_file);
	free(p->core.engine.user);
	free(p->core.engine.password_file);
	json_object_put(p->core.env);
	json_object_put(p->core.type_defaults);
	free(p->core.type_defaults_pos);
	for (size_t k = 0; k < p->core.next_reqs; k++) {
		struct orchd_ext_req *r = &p->core.ext_reqs[k];

		free(r->type);
		free(r->source);
		free(r->version);
		free(r->ref);
		free(r->path);
		free(r->sha256);
	}
	free(p->core.ext_reqs);
	orchd_isolation_release(&p->core.isolation);
	for (i = 0; i < p->ninst; i++)
		orchd_instance_release(&p->inst[i]);
	free(p->inst);
	for (i = 0; i < p->ntypes; i++)
		free(p->types[i]);
	free(p->types);
	free(p->types_pos);
	index_free(p->index);
	free(p);
}

int orchd_name_is_safe(const char *s)
{
	size_t i;

	if (!s || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
		    (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (i = 1; s[i]; i++) {
		char c = s[i];

		if (i >= 63)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
		if (c == '.' && s[i - 1] == '.')
			return 0;
	}
	return 1;
}
