/* orchd: command-line entry point (placeholder until the CLI lands). */
#include <stdio.h>
#include <string.h>

#include "util.h"

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "version")) {
		printf("orchd %s\n", ORCHD_VERSION);
		return ORCHD_EXIT_OK;
	}
	fprintf(stderr, "usage: orchd version\n");
	return ORCHD_EXIT_USAGE;
}
