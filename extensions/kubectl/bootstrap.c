/*
 * bootstrap: how orchd-ext-kubectl starts, and what it declares itself to be.
 *
 * orchd runs the executable with no arguments and speaks the protocol on
 * its stdin and stdout.  Bootstrapping is the part of the run before the
 * extension's own logic: op_ext_main() reads orchd's hello, answers with
 * the declaration below (name, version, the oldest orchd it works with and
 * the actions it has a handler for), reads the one action, calls its
 * handler (extension.c) and ends the run with its exit status.
 */
#include <orchd/orchd_protocol.h>

#include "extension.h"

static const struct op_ext_info info = {
	.name = KC_NAME,
	.version = KC_VERSION,
	.min_orchd_version = "0.1.0",
	.actions = NULL, /* the actions with a handler below */
};

static const struct op_ext_handlers handlers = {
	.describe = kc_describe,
	.validate = kc_validate,
	.plan = kc_plan,
	.apply = kc_apply,
	.destroy = kc_destroy,
};

int main(int argc, char **argv)
{
	return op_ext_main(argc, argv, &info, &handlers);
}
