#!/usr/bin/env python3
"""gen_pipeline.py N [SEED] [--templates DIR] -- a pipeline of N exec instances.

Each instance depends on up to three earlier ones (so the graph is a DAG),
about one in ten carries a reference to an earlier instance's output, and
every instance merges a shared anchored mapping (`<<: *defaults`), so the
bench exercises anchors, aliases, merge keys, depends_on and references.
Printed on stdout.

With --templates DIR: the same instances (the same config blobs, edges and
references) made from a template imported from a second file:
DIR/pipeline.yaml imports DIR/lib.yaml, which defines the template `step`
(parameters n, level, msg); each instance says `template: step` and `with:`.
"""
import random
import sys


LIB = """core:
  templates:
    step:
      params:
        n: {type: number, required: true}
        level: {type: string, default: "3"}
      config:
        env: {STAGE: bench, LEVEL: '${{ params.level }}'}
        command: [sh, -c, 'echo step ${{ params.n }}']
"""


def templated(n, rnd, outdir):
    with open(outdir + "/lib.yaml", "w") as f:
        f.write(LIB)
    with open(outdir + "/pipeline.yaml", "w") as out:
        out.write("bench:\n")
        out.write("  core:\n    parallelism: 8\n    imports: [lib.yaml]\n")
        out.write("    execution_defaults: {max_attempts: 2, timeout: 5m}\n")
        out.write("  exec:\n")
        out.write("    - name: i0\n      template: step\n      with: {n: 0}\n")
        out.write("      command: [sh, -c, 'echo start']\n")
        for i in range(1, n):
            out.write(f"    - name: i{i}\n")
            out.write(f"      template: step\n      with: {{n: {i}}}\n")
            deps = sorted({rnd.randrange(i) for _ in range(min(i, rnd.randint(1, 3)))})
            out.write("      depends_on: [" + ", ".join(f"i{d}" for d in deps) + "]\n")
            if i % 10 == 0:
                ref = rnd.randrange(i)
                out.write(f"      message: \"from ${{{{ exec.i{ref}.outputs.value }}}}\"\n")
            if i % 50 == 0:
                out.write("      execution: {max_attempts: 3, timeout: 90s}\n")


def main():
    args = [a for a in sys.argv[1:]]
    outdir = None
    if "--templates" in args:
        k = args.index("--templates")
        outdir = args[k + 1]
        del args[k:k + 2]
    n = int(args[0])
    rnd = random.Random(int(args[1]) if len(args) > 1 else 42)
    if outdir:
        templated(n, rnd, outdir)
        return
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
