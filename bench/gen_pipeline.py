#!/usr/bin/env python3
"""gen_pipeline.py N [SEED] -- print a pipeline of N exec instances.

Each instance depends on up to three earlier ones (so the graph is a DAG),
about one in ten carries a reference to an earlier instance's output, and
every instance merges a shared anchored mapping (`<<: *defaults`), so the
bench exercises anchors, aliases, merge keys, depends_on and references.
"""
import random
import sys


def main():
    n = int(sys.argv[1])
    rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
    out = sys.stdout
    out.write("bench:\n")
    out.write("  core:\n    parallelism: 8\n")
    out.write("    execution_defaults: {max_attempts: 2, timeout: 5m}\n")
    out.write("  exec:\n")
    out.write("    - &first\n      name: i0\n")
    out.write("      command: [sh, -c, 'echo start']\n")
    out.write("      env: &defaults {STAGE: bench, LEVEL: \"3\"}\n")
    for i in range(1, n):
        out.write(f"    - name: i{i}\n")
        out.write("      env: *defaults\n")
        deps = sorted({rnd.randrange(i) for _ in range(min(i, rnd.randint(1, 3)))})
        out.write("      depends_on: [" + ", ".join(f"i{d}" for d in deps) + "]\n")
        out.write(f"      command: [sh, -c, 'echo step {i}']\n")
        if i % 10 == 0:
            ref = rnd.randrange(i)
            out.write(f"      message: \"from ${{{{ exec.i{ref}.outputs.value }}}}\"\n")
        if i % 50 == 0:
            out.write("      execution: {max_attempts: 3, timeout: 90s}\n")


if __name__ == "__main__":
    main()
