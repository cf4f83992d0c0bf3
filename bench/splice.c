/* splice: the floor of `flatline run --tee`'s relay (SPEC §8): copies stdin (a pipe) to the
 * file named by argv[1] with splice(2), in the kernel, and nothing else.
 *   producer | splice FILE
 * Built by bench/launch.sh with `cc -O2`; only libc. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: producer | splice FILE\n");
        return 2;
    }
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0) {
        perror(argv[1]);
        return 1;
    }
    for (;;) {
        ssize_t n = splice(0, NULL, out, NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n == 0)
            return 0;
        if (n < 0) {
            perror("splice");
            return 1;
        }
    }
}
