/*
 * orchd-reaper: the first process of every extension orchd starts (see
 * op_child.reaper_exe in orchd_protocol.h).  orchd makes it with
 * clone(CLONE_VM | CLONE_VFORK), in the sandbox's new namespaces under
 * isolation strict, and it execs this program at once: unlike a fork of
 * orchd, starting it copies none of orchd's address space, and nothing of
 * orchd's memory (its state, the secrets it holds) is in it.
 *
 * It reads its plan on fd 5 (the extension's argv, environment and
 * working directory, and the sandbox of handlers/sandbox.c), waits for
 * orchd's go-ahead (the uid and gid maps, the cgroup), makes the mounts,
 * then starts the extension and reaps it and everything it starts, as
 * the reaper of op_child does.  Not meant to be run by hand: without its
 * fds it fails at once.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "handlers/sandbox.h"
#include "orchd_protocol.h"

int main(int argc, char **argv)
{
	(void)argv;
	if (argc != 1 || fcntl(5, F_GETFD) < 0 || fcntl(3, F_GETFD) < 0) {
		fputs("orchd-reaper: started by orchd only (see orchd_protocol.h)\n", stderr);
		return 2;
	}
	op_child_reaper_main(orchd_sandbox_decode);
}
