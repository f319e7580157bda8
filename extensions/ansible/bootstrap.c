/*
 * bootstrap: orchd-ext-ansible's main(): handshake, then dispatch the action.
 */
#include <stdio.h>

#include "orchd_protocol.h"

#include "extension.h"

static const char *const actions[] = {"describe", "validate", "plan", "apply", "destroy", NULL};

int main(int argc, char **argv)
{
	struct op_ext_info info = {ANS_NAME, ANS_VERSION, "0.1.0", actions};
	struct op_ext *ext;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr,
			"orchd-ext-ansible %s: an orchd extension (protocol %d); "
			"it is started by orchd and speaks JSON lines on stdin/stdout\n",
			ANS_VERSION, OP_PROTOCOL_MAX);
		return 2;
	}
	ext = op_ext_start(&info, 0, 1);
	if (!ext)
		return 1;
	switch (op_ext_action(ext)) {
	case OP_ACTION_DESCRIBE:
		ans_describe(ext);
		break;
	case OP_ACTION_VALIDATE:
		ans_validate(ext);
		break;
	case OP_ACTION_PLAN:
		ans_plan(ext);
		break;
	case OP_ACTION_APPLY:
		ans_apply(ext);
		break;
	case OP_ACTION_DESTROY:
		ans_destroy(ext);
		break;
	case OP_ACTION_NONE:
		op_ext_result(ext, false, -1, NULL, "unsupported action");
		break;
	}
	return op_ext_finish(ext);
}
