/* launch-running: `flatline run`'s launch to its RUNNING record (SPEC §8: launch to the
 * delegation written ≤ 2 ms more than a bare fork+exec), against that bare fork+exec.
 *   launch-running ROUNDS BIN RUN_DIR
 * Each round, alternately: (a) fork + exec `BIN run --run-dir RUN_DIR --id lrN --no-watch
 * -- /bin/sleep 0.2`, then wait for RUN_DIR/delegations/lrN.json to record
 * `"status": "running"` (the worker's identity is on disk): that instant minus the fork is
 * the launch (the first rename, the queued record, is noted too); (b) fork + exec + wait of
 * /bin/true. Prints the medians and p90 in ms.
 * The delegation is watched with inotify (IN_MOVED_TO: every record flatline writes is a
 * rename into delegations/), so this process sleeps in read(2) until the rename and takes
 * no core from the launch it measures; an earlier version polled the file every 50 µs,
 * which on 2 cores slowed the launch by its own reads and timer wake-ups.
 * Built by bench/launch.sh with `cc -O2`; only libc. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int running(const char *path) {
    static char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strstr(buf, "\"status\": \"running\"") != NULL || strstr(buf, "\"status\":\"running\"") != NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: launch-running ROUNDS BIN RUN_DIR\n");
        return 2;
    }
    int rounds = atoi(argv[1]);
    double *launch = calloc(rounds, sizeof(double)), *bare = calloc(rounds, sizeof(double));
    double *queued = calloc(rounds, sizeof(double));
    pid_t *pids = calloc(rounds, sizeof(pid_t));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/delegations", argv[3]);
    mkdir(dir, 0755);
    int watch = inotify_init1(IN_CLOEXEC);
    if (watch < 0 || inotify_add_watch(watch, dir, IN_MOVED_TO) < 0) {
        perror("launch-running: inotify on delegations/");
        return 1;
    }
    for (int i = 0; i < rounds; i++) {
        char id[32], doc[4096];
        snprintf(id, sizeof id, "lr%d", i);
        snprintf(doc, sizeof doc, "%s/delegations/%s.json", argv[3], id);
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            execl(argv[2], argv[2], "run", "--run-dir", argv[3], "--id", id, "--no-watch", "--",
                  "/bin/sleep", "0.2", (char *)NULL);
            _exit(127);
        }
        /* Each rename into delegations/ wakes this read; the record is checked then. A
         * launch that ends without a running record ends the bench (the 5 s poll timeout
         * notices a flatline that died without writing anything). */
        for (;;) {
            struct pollfd pfd = {.fd = watch, .events = POLLIN};
            if (poll(&pfd, 1, 5000) == 1) {
                char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t n = read(watch, events, sizeof events);
                if (n < 0) {
                    perror("launch-running: inotify read");
                    return 1;
                }
                if (queued[i] == 0 && access(doc, F_OK) == 0)
                    queued[i] = now_ms() - t0;
                if (running(doc))
                    break;
            }
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                fprintf(stderr, "launch-running: %s ended before its running record\n", id);
                return 1;
            }
        }
        launch[i] = now_ms() - t0;
        pids[i] = pid;
        t0 = now_ms();
        pid_t floor = fork();
        if (floor == 0) {
            execl("/bin/true", "/bin/true", (char *)NULL);
            _exit(127);
        }
        waitpid(floor, NULL, 0);
        bare[i] = now_ms() - t0;
        waitpid(pid, NULL, 0);
    }
    qsort(launch, rounds, sizeof(double), cmp);
    qsort(queued, rounds, sizeof(double), cmp);
    qsort(bare, rounds, sizeof(double), cmp);
    int p90 = rounds * 9 / 10;
    printf("launch to running record: median %.3f ms, p90 %.3f ms (%d rounds)\n",
           launch[rounds / 2], launch[p90], rounds);
    printf("launch to queued record:  median %.3f ms, p90 %.3f ms (the delegation first written)\n",
           queued[rounds / 2], queued[p90]);
    printf("bare fork+exec+wait:      median %.3f ms, p90 %.3f ms\n", bare[rounds / 2], bare[p90]);
    printf("overhead: %.3f ms at the median (target <= 2 ms)\n", launch[rounds / 2] - bare[rounds / 2]);
    return 0;
}
