/*
 * yaml_parse FILE...: the baseline of config_bench.sh -- read each FILE and
 * run libyaml's event parser over it, doing nothing with the events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

int main(int argc, char **argv)
{
	long events = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: yaml_parse FILE...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		yaml_parser_t parser;
		yaml_event_t ev;
		FILE *fp = fopen(argv[i], "rb");
		int done = 0;

		if (!fp) {
			fprintf(stderr, "yaml_parse: cannot open %s\n", argv[i]);
			return 2;
		}
		yaml_parser_initialize(&parser);
		yaml_parser_set_input_file(&parser, fp);
		while (!done) {
			if (!yaml_parser_parse(&parser, &ev)) {
				fprintf(stderr, "yaml_parse: %s: %s\n", argv[i], parser.problem);
				return 1;
			}
			done = ev.type == YAML_STREAM_END_EVENT;
			yaml_event_delete(&ev);
			events++;
		}
		yaml_parser_delete(&parser);
		fclose(fp);
	}
	printf("%ld\n", events);
	return 0;
}
