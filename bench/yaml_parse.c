/*
 * yaml_parse FILE: the baseline of config_bench.sh -- read FILE and run
 * libyaml's event parser over it, doing nothing with the events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

int main(int argc, char **argv)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	FILE *fp;
	long events = 0;
	int done = 0;

	if (argc != 2 || !(fp = fopen(argv[1], "rb"))) {
		fprintf(stderr, "usage: yaml_parse FILE\n");
		return 2;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			fprintf(stderr, "yaml_parse: %s\n", parser.problem);
			return 1;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
		events++;
	}
	yaml_parser_delete(&parser);
	fclose(fp);
	printf("%ld\n", events);
	return 0;
}
