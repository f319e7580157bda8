/*
 * miniext: the smallest C extension, all of it op_ext_main(), for
 * tests/test_extmain.c.
 *
 * Its declaration is chosen by the environment (the config is only known
 * after the handshake), MINIEXT_INFO:
 *   (unset)   name mini, version 1.2.3, actions NULL (advertised: the
 *             handlers', i.e. describe, validate, apply)
 *   explicit  actions listed by hand: describe, validate, plan (plan has
 *             no handler)
 * Handlers (plan and destroy have none):
 *   describe  op_ext_describe(ext, "a test extension", NULL)
 *   validate  success "valid"; config.mode "noresult": returns without a
 *             result; "error": an error message (retryable, "it broke: 7")
 *             then failure "broken"; "cancel": waits for a cancel, then
 *             failure "cancelled (REASON)"
 *   apply     outputs instance, stack, upstream (the action's outputs) and
 *             type (the action message's type), then success "applied"
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_protocol.h"

static int mini_describe(struct op_ext *ext)
{
	return op_ext_describe(ext, "a test extension", NULL);
}

static int mini_validate(struct op_ext *ext)
{
	const char *mode = op_get_str(op_ext_config(ext), "mode"), *reason = NULL;

	if (!mode)
		return op_ext_result(ext, true, 0, NULL, "valid");
	if (!strcmp(mode, "noresult"))
		return 0;
	if (!strcmp(mode, "error")) {
		op_ext_error(ext, true, "it broke: %d", 7);
		return op_ext_result(ext, false, -1, NULL, "broken");
	}
	/* "cancel": a cancel sent with the action is already buffered */
	while (!op_ext_check_cancel(ext, &reason)) {
		struct pollfd p = {op_ext_in_fd(ext), POLLIN, 0};

		poll(&p, 1, -1);
	}
	return op_ext_result(ext, false, -1, NULL, "cancelled (%s)",
			     op_ext_cancelled(ext) ? reason : "?");
}

static int mini_apply(struct op_ext *ext)
{
	if (op_ext_output_str(ext, "instance", op_ext_instance(ext), false) < 0 ||
	    op_ext_output_str(ext, "stack", op_ext_stack(ext), false) < 0 ||
	    op_ext_output(ext, "upstream", op_ext_outputs(ext), false) < 0 ||
	    op_ext_output_str(ext, "type", op_get_str(op_ext_message(ext), "type"), false) < 0)
		return op_ext_result(ext, false, -1, NULL, "cannot send the outputs");
	return op_ext_result(ext, true, 1, NULL, "applied");
}

static const char *const explicit_actions[] = {"describe", "validate", "plan", NULL};

static const struct op_ext_handlers handlers = {
	.describe = mini_describe,
	.validate = mini_validate,
	.apply = mini_apply,
};

int main(int argc, char **argv)
{
	const char *which = getenv("MINIEXT_INFO");
	struct op_ext_info info = {"mini", "1.2.3", "0.1.0", NULL};

	if (which && !strcmp(which, "explicit"))
		info.actions = explicit_actions;
	return op_ext_main(argc, argv, &info, &handlers);
}
