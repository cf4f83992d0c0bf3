/* spawn: starts N idle worker processes for the liveness and activity benchmarks, each the
 * root of a tree of SIZE processes (the worker and SIZE - 1 children), and prints the workers'
 * pids on stdout, one a line, once every process of every tree runs.
 *
 *   spawn N SIZE      (stays in the foreground until it gets SIGTERM or SIGKILL)
 *
 * Every process it creates has PR_SET_PDEATHSIG = SIGKILL: killing spawn (any signal that
 * ends it) kills the workers, and each worker's end kills its children, so nothing outlives
 * the benchmark. The processes only pause(). Built by bench/run.sh with `cc -O2`; only libc.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Forks a child that dies with its parent; returns its pid in the parent, 0 in the child. */
static pid_t child(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawn: fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0); /* the parent died before prctl */
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc != 3 || atoi(argv[1]) < 1 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: spawn N SIZE\n");
        return 2;
    }
    int n = atoi(argv[1]), size = atoi(argv[2]);
    int ready[2];
    if (pipe(ready) != 0) return 1;
    for (int i = 0; i < n; i++) {
        pid_t pid = child();
        if (pid == 0) {
            close(ready[0]);
            for (int j = 1; j < size; j++)
                if (child() == 0) {
                    close(ready[1]);
                    for (;;) pause();
                }
            /* One byte once the tree exists: the children run (fork returned). */
            if (write(ready[1], "", 1) != 1) _exit(1);
            close(ready[1]);
            for (;;) pause();
        }
        printf("%d\n", pid);
    }
    close(ready[1]);
    char byte;
    for (int i = 0; i < n; i++)
        if (read(ready[0], &byte, 1) != 1) {
            fprintf(stderr, "spawn: a worker did not start\n");
            return 1;
        }
    fflush(stdout);
    fclose(stdout); /* end of the list: the reader may go on */
    for (;;) pause();
}
