#!/usr/bin/env python3
# pulumi_seed.py N WORKDIR -- the seed's own design, for pulumi_seed_bench.sh:
# a Python orchestrator that keeps each instance's outputs in its own Pulumi
# stack through the Automation API (pip package `pulumi`) with an inline
# program.  Serially, one stack after the other, it creates stacks
# dev-exec-t0..t{N-1} of project seedbench, each exporting url (plain) and
# token (secret) with one stack.up(); then selects every stack again and reads
# its outputs back.  Local file backend under WORKDIR, passphrase secrets
# (PULUMI_CONFIG_PASSPHRASE from the caller), the pulumi CLI from PATH.
# Prints: seed N=<N> create_ms=<ms> read_ms=<ms> total_ms=<ms>
import os
import sys
import time

import pulumi
from pulumi import automation as auto


def program_for(i):
    def program():
        pulumi.export("url", f"http://host/{i}")
        pulumi.export("token", pulumi.Output.secret(f"secret-{i}"))
    return program


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: pulumi_seed.py N WORKDIR")
    n = int(sys.argv[1])
    workdir = os.path.abspath(sys.argv[2])
    passphrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if passphrase is None:
        sys.exit("pulumi_seed: PULUMI_CONFIG_PASSPHRASE is not set")
    for d in ("backend", "home", "work"):
        os.makedirs(os.path.join(workdir, d), exist_ok=True)
    env = {
        "PULUMI_BACKEND_URL": "file://" + os.path.join(workdir, "backend"),
        "PULUMI_HOME": os.path.join(workdir, "home"),
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    os.environ.update(env)  # the CLI's environment, whatever the SDK passes

    def opts():
        # a workspace per stack, as the seed does; work_dir under WORKDIR, so
        # that no automation-* directory is left in /tmp
        return auto.LocalWorkspaceOptions(
            work_dir=os.path.join(workdir, "work"),
            pulumi_home=env["PULUMI_HOME"],
            env_vars=env,
            secrets_provider="passphrase",
        )

    names = [f"dev-exec-t{i}" for i in range(n)]
    t0 = time.monotonic()
    for i, name in enumerate(names):
        stack = auto.create_or_select_stack(stack_name=name, project_name="seedbench",
                                            program=program_for(i), opts=opts())
        stack.up(on_output=None)
    t1 = time.monotonic()
    bad = 0
    for i, name in enumerate(names):
        stack = auto.select_stack(stack_name=name, project_name="seedbench",
                                  program=program_for(i), opts=opts())
        out = stack.outputs()
        url, token = out.get("url"), out.get("token")
        if (url is None or url.value != f"http://host/{i}" or url.secret or
                token is None or token.value != f"secret-{i}" or not token.secret):
            print(f"pulumi_seed: {name}: wrong outputs {out!r}", file=sys.stderr)
            bad += 1
    t2 = time.monotonic()
    if bad:
        sys.exit(1)
    ms = lambda a, b: int((b - a) * 1000)
    print(f"seed N={n} create_ms={ms(t0, t1)} read_ms={ms(t1, t2)} total_ms={ms(t0, t2)}")


if __name__ == "__main__":
    main()
