/*
 * bootstrap: orchd-ext-secrets' main(): handshake, then dispatch the action.
 */
#include <stdio.h>

#include "orchd_protocol.h"

#include "extension.h"

static const char *const actions[] = {"describe", "validate", "plan", "apply", "destroy", NULL};

int main(int argc, char **argv)
{
	struct op_ext_info info = {SECRETS_NAME, SECRETS_VERSION, "0.1.0", actions};
	struct op_ext *ext;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr,
			"orchd-ext-secrets %s: an orchd extension (protocol %d); "
			"it is started by orchd and speaks JSON lines on stdin/stdout\n",
			SECRETS_VERSION, OP_PROTOCOL_MAX);
		return 2;
	}
	ext = op_ext_start(&info, 0, 1);
	if (!ext)
		return 1;
	switch (op_ext_action(ext)) {
	case OP_ACTION_DESCRIBE:
		secrets_describe(ext);
		break;
	case OP_ACTION_VALIDATE:
		secrets_validate(ext);
		break;
	case OP_ACTION_PLAN:
		secrets_plan(ext);
		break;
	case OP_ACTION_APPLY:
		secrets_apply(ext);
		break;
	case OP_ACTION_DESTROY:
		secrets_destroy(ext);
		break;
	case OP_ACTION_NONE:
		op_ext_result(ext, false, -1, NULL, "unsupported action");
		break;
	}
	return op_ext_finish(ext);
}
