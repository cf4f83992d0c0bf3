/* abrun: runs several commands side by side, alternating, and reports medians with ranges.
 *
 *   abrun RUNS WARMUP NAME [runs=K] [ok=C,...] CMD [ARG...] [:: NAME ... CMD [ARG...]]...
 *
 * Each round runs every command once, in rotated order (round r starts with command r mod k),
 * so that drift of the machine over time hits every command alike. WARMUP untimed rounds come
 * first (page cache warm). A command is executed directly (posix_spawnp, no shell: pass
 * `sh -c '...'` explicitly when a pipeline is meant) with stdin and stdout on /dev/null;
 * stderr is kept so that problems show. Wall time is CLOCK_MONOTONIC around spawn + wait4;
 * user, system time and peak resident set size (ru_maxrss, the figure /usr/bin/time -v
 * prints as "Maximum resident set size") come from wait4's rusage of that child.
 * A command that exits with another status than 0 (or one listed with ok=) aborts the
 * measurement (exit 1). runs=K gives a slow baseline only K timed runs (in the first K rounds)
 * and no warm-up run: when one run takes tens of seconds, a cold cache is noise.
 *
 * Prints one tab-separated line per command on stdout:
 *   name runs wall_median_ms wall_min_ms wall_max_ms user_median_ms sys_median_ms
 *   maxrss_median_kib maxrss_min_kib maxrss_max_kib wall_p90_ms
 * (p90: the value at rank ceil(0.9 n) of the n sorted wall times; the nearest-rank method.)
 * Built by bench/run.sh with `cc -O2`; only libc.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct command {
    const char *name;
    char **argv;
    int runs;       /* timed runs of this command */
    int ok[8], oks; /* accepted exit statuses */
    double *wall, *user, *sys, *rss;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double tv_ms(struct timeval tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; }

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The nearest-rank percentile of v[0..n), which must be sorted. */
static double percentile(const double *v, int n, int pct) {
    int rank = (pct * n + 99) / 100;
    return v[rank < 1 ? 0 : rank - 1];
}

static void run(struct command *c, int slot) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int status;
    struct rusage ru;
    double start = now_ms();
    int error = posix_spawnp(&pid, c->argv[0], &actions, NULL, c->argv, environ);
    if (error) {
        fprintf(stderr, "abrun: %s: cannot run %s: %s\n", c->name, c->argv[0], strerror(error));
        exit(1);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("abrun: wait4");
        exit(1);
    }
    double end = now_ms();
    posix_spawn_file_actions_destroy(&actions);
    int accepted = 0;
    for (int i = 0; WIFEXITED(status) && i < c->oks; i++)
        if (WEXITSTATUS(status) == c->ok[i]) accepted = 1;
    if (!accepted) {
        fprintf(stderr, "abrun: %s: exited with status %d (signal %d)\n", c->name,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        exit(1);
    }
    if (slot >= 0) {
        c->wall[slot] = end - start;
        c->user[slot] = tv_ms(ru.ru_utime);
        c->sys[slot] = tv_ms(ru.ru_stime);
        c->rss[slot] = (double)ru.ru_maxrss;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: abrun RUNS WARMUP NAME [runs=K] [ok=C,...] CMD [ARG...] [:: NAME ...]...\n");
        return 2;
    }
    int runs = atoi(argv[1]), warmup = atoi(argv[2]);
    if (runs < 1 || warmup < 0) {
        fprintf(stderr, "abrun: bad RUNS or WARMUP\n");
        return 2;
    }
    struct command commands[16];
    int k = 0;
    for (int i = 3; i < argc;) {
        if (k == 16 || i + 1 >= argc) {
            fprintf(stderr, "abrun: each command needs a NAME and a CMD (at most 16)\n");
            return 2;
        }
        struct command *c = &commands[k++];
        c->name = argv[i++];
        c->runs = runs;
        c->ok[0] = 0;
        c->oks = 1;
        for (;; i++) {
            if (i < argc && strncmp(argv[i], "runs=", 5) == 0) {
                c->runs = atoi(argv[i] + 5);
                if (c->runs < 1 || c->runs > runs) {
                    fprintf(stderr, "abrun: %s: runs= must be 1..RUNS\n", c->name);
                    return 2;
                }
            } else if (i < argc && strncmp(argv[i], "ok=", 3) == 0) {
                c->oks = 0;
                for (char *p = argv[i] + 3; *p && c->oks < 8;) {
                    c->ok[c->oks++] = (int)strtol(p, &p, 10);
                    if (*p == ',') p++;
                    else if (*p) {
                        fprintf(stderr, "abrun: %s: bad ok= list\n", c->name);
                        return 2;
                    }
                }
            } else
                break;
        }
        if (i >= argc || strcmp(argv[i], "::") == 0) {
            fprintf(stderr, "abrun: %s: no command\n", c->name);
            return 2;
        }
        c->argv = &argv[i];
        while (i < argc && strcmp(argv[i], "::") != 0) i++;
        if (i < argc) argv[i++] = NULL; /* ends this command's argv */
        c->wall = calloc(runs, sizeof(double));
        c->user = calloc(runs, sizeof(double));
        c->sys = calloc(runs, sizeof(double));
        c->rss = calloc(runs, sizeof(double));
    }
    for (int r = 0; r < warmup; r++)
        for (int j = 0; j < k; j++)
            if (commands[j].runs == runs) run(&commands[j], -1);
    for (int r = 0; r < runs; r++)
        for (int j = 0; j < k; j++) {
            struct command *c = &commands[(r + j) % k];
            if (r < c->runs) run(c, r);
        }
    for (int j = 0; j < k; j++) {
        struct command *c = &commands[j];
        int n = c->runs;
        double wall = median(c->wall, n);
        double user = median(c->user, n), sys = median(c->sys, n);
        double rss = median(c->rss, n);
        printf("%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f\t%.0f\t%.0f\t%.3f\n", c->name, n, wall,
               c->wall[0], c->wall[n - 1], user, sys, rss, c->rss[0], c->rss[n - 1],
               percentile(c->wall, n, 90));
        fflush(stdout);
    }
    return 0;
}
