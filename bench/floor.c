/* floor: the floor programs of the flatline benchmarks (SPEC §8). Each mode does the
 * mandatory work of one measured command and nothing else: no sorting, no output per file.
 *
 *   floor DIR                   opens, reads and closes every file of DIR (the I/O alone)
 *   floor --json DIR            the same, and validates each file's JSON (RFC 8259: structure,
 *                               strings with their escapes and UTF-8, numbers) with a
 *                               validating scanner that builds no tree; an invalid file fails
 *   floor --json DIR --pids F   the same, then for every pid in F (one a line): pidfd_open +
 *                               close, open/read/close /proc/PID/stat and /proc/PID/status
 *                               (the facts SPEC §3.1 needs per live worker)
 *   floor --json DIR --tree F   the same as --json, then one scan of /proc reading every
 *                               process's stat once (parent links), and for every process in
 *                               the trees rooted at the pids of F, /proc/PID/io (SPEC §11)
 *   floor --fsync DIR [N]       N (30) rounds of a 4 KiB write + fsync of a new file in DIR:
 *                               prints the median and p90 fsync latency in ms
 *   floor --splice FILE CMD...  runs CMD with stdout a pipe and splice(2)s the pipe into FILE
 *                               (created, truncated) until end of file: the relay floor of
 *                               `flatline run --tee` (SPEC §12)
 *   floor --spawn CMD...        a bare fork + exec + wait of CMD (the launch floor of §12)
 *
 * openat() relative to the directory's descriptor, read() into one reused 64 KiB buffer until
 * end of file (two reads for a 2 KB file, as any reader that does not trust the size needs),
 * close(). Prints one summary line at the end. Built by bench/run.sh with `cc -O2`; only libc.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char buf[(1 << 16) + 1]; /* one byte more for a terminating NUL */

/* ---- a validating JSON scanner: no tree, no allocation ---------------------------------- */
struct scan {
    const unsigned char *p, *end;
    int depth;
};

static void ws(struct scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hex(int c) { return isxdigit(c); }

/* One UTF-8 sequence starting at s->p (a byte >= 0x80): well formed, shortest form. */
static int utf8(struct scan *s) {
    const unsigned char *p = s->p;
    int n;
    unsigned cp;
    if (*p >= 0xC2 && *p <= 0xDF) n = 1, cp = *p & 0x1F;
    else if (*p >= 0xE0 && *p <= 0xEF) n = 2, cp = *p & 0x0F;
    else if (*p >= 0xF0 && *p <= 0xF4) n = 3, cp = *p & 0x07;
    else return 0;
    if (s->end - p <= n) return 0;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    s->p += n + 1;
    return 1;
}

static int string(struct scan *s) {
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (s->end - s->p < 2) return 0;
            c = s->p[1];
            if (c == 'u') {
                if (s->end - s->p < 6 || !hex(s->p[2]) || !hex(s->p[3]) || !hex(s->p[4]) ||
                    !hex(s->p[5]))
                    return 0;
                s->p += 6;
            } else if (strchr("\"\\/bfnrt", c) && c) {
                s->p += 2;
            } else
                return 0;
        } else if (c >= 0x80) {
            if (!utf8(s)) return 0;
        } else
            s->p++;
    }
    return 0;
}

static int digits(struct scan *s) {
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    return s->p > start;
}

static int number(struct scan *s) {
    if (*s->p == '-') s->p++;
    if (s->p < s->end && *s->p == '0') s->p++;
    else if (!digits(s)) return 0;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digits(s)) return 0;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
        if (!digits(s)) return 0;
    }
    return 1;
}

static int word(struct scan *s, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
    s->p += n;
    return 1;
}

static int value(struct scan *s) {
    ws(s);
    if (s->p >= s->end) return 0;
    switch (*s->p) {
    case '"': return string(s);
    case 't': return word(s, "true");
    case 'f': return word(s, "false");
    case 'n': return word(s, "null");
    case '{':
    case '[': {
        unsigned char close = *s->p == '{' ? '}' : ']';
        int object = close == '}';
        if (++s->depth > 128) return 0;
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            s->depth--;
            return 1;
        }
        for (;;) {
            if (object) {
                ws(s);
                if (s->p >= s->end || *s->p != '"' || !string(s)) return 0;
                ws(s);
                if (s->p >= s->end || *s->p++ != ':') return 0;
            }
            if (!value(s)) return 0;
            ws(s);
            if (s->p >= s->end) return 0;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p++ != close) return 0;
            s->depth--;
            return 1;
        }
    }
    default: return number(s);
    }
}

static int valid_json(const char *text, size_t n) {
    struct scan s = {(const unsigned char *)text, (const unsigned char *)text + n, 0};
    if (!value(&s)) return 0;
    ws(&s);
    return s.p == s.end;
}

/* ---- files ---------------------------------------------------------------------------- */
/* Reads the whole file NAME of the directory DFD into buf; returns its length or -1. */
static long read_at(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    long len = 0;
    ssize_t n = 0;
    while (len < (long)sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += n;
    close(fd);
    return n < 0 ? -1 : len;
}

static long files, bytes, procs;

static int read_dir(const char *path, int json) {
    DIR *dir = opendir(path);
    if (!dir) {
        perror(path);
        return 1;
    }
    int dfd = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        long n = read_at(dfd, entry->d_name);
        if (n < 0) {
            perror(entry->d_name);
            return 1;
        }
        if (json && !valid_json(buf, n)) {
            fprintf(stderr, "%s/%s: invalid JSON\n", path, entry->d_name);
            return 1;
        }
        bytes += n;
        files++;
    }
    closedir(dir);
    return 0;
}

static long *read_pids(const char *path, long *count) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    long cap = 1024, n = 0, pid;
    long *pids = malloc(cap * sizeof *pids);
    while (fscanf(f, "%ld", &pid) == 1) {
        if (n == cap) pids = realloc(pids, (cap *= 2) * sizeof *pids);
        pids[n++] = pid;
    }
    fclose(f);
    *count = n;
    return pids;
}

static int proc_file(long pid, const char *what) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/%s", pid, what);
    long n = read_at(AT_FDCWD, path);
    if (n <= 0) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 1;
    }
    bytes += n;
    return 0;
}

static int liveness(const char *pid_file) {
    long n, *pids = read_pids(pid_file, &n);
    for (long i = 0; i < n; i++) {
        int fd = (int)syscall(SYS_pidfd_open, (pid_t)pids[i], 0);
        if (fd < 0) {
            fprintf(stderr, "pidfd_open %ld failed\n", pids[i]);
            return 1;
        }
        close(fd);
        if (proc_file(pids[i], "stat") || proc_file(pids[i], "status")) return 1;
        procs++;
    }
    return 0;
}

/* One scan of /proc: every process's stat once (its parent), then io of every process in
 * the trees rooted at the pids of PID_FILE. */
static int trees(const char *pid_file) {
    long n, *roots = read_pids(pid_file, &n);
    static int parent[1 << 22];
    static char in_tree[1 << 22];
    long *all = malloc(sizeof(long) << 16);
    long count = 0;
    DIR *dir = opendir("/proc");
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end || pid <= 0 || pid >= (1 << 22) || count == (1 << 16)) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        long len = read_at(AT_FDCWD, path);
        if (len <= 0) continue; /* exited since the listing */
        buf[len] = 0;
        char *close_paren = strrchr(buf, ')');
        int ppid = 0;
        if (!close_paren || sscanf(close_paren + 2, "%*c %d", &ppid) != 1) continue;
        parent[pid] = ppid;
        all[count++] = pid;
        bytes += len;
    }
    if (dir) closedir(dir);
    for (long i = 0; i < n; i++)
        if (roots[i] > 0 && roots[i] < (1 << 22)) in_tree[roots[i]] = 1;
    /* Parents usually have lower pids; repeat until no process joins a tree. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (long i = 0; i < count; i++)
            if (!in_tree[all[i]] && in_tree[parent[all[i]]]) in_tree[all[i]] = changed = 1;
    }
    for (long i = 0; i < count; i++)
        if (in_tree[all[i]]) {
            if (proc_file(all[i], "io")) return 1;
            procs++;
        }
    return 0;
}

/* ---- fsync, splice, spawn -------------------------------------------------------------- */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fsync_latency(const char *dir, int rounds) {
    double t[1000];
    char path[4096];
    if (rounds < 1 || rounds > 1000) rounds = 30;
    memset(buf, 'x', 4096);
    for (int i = 0; i < rounds; i++) {
        snprintf(path, sizeof path, "%s/fsync-%d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, buf, 4096) != 4096) {
            perror(path);
            return 1;
        }
        double start = now_ms();
        if (fsync(fd) != 0) {
            perror("fsync");
            return 1;
        }
        t[i] = now_ms() - start;
        close(fd);
        unlink(path);
    }
    qsort(t, rounds, sizeof *t, cmp);
    printf("fsync of a 4 KiB write: median %.3f ms, p90 %.3f ms (%d rounds)\n", t[rounds / 2],
           t[(90 * rounds + 99) / 100 - 1], rounds);
    return 0;
}

static int splice_copy(const char *out, char **argv) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return 1;
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(out);
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    ssize_t n;
    while ((n = splice(p[0], NULL, fd, NULL, 1 << 20, SPLICE_F_MOVE)) > 0) bytes += n;
    int status;
    waitpid(pid, &status, 0);
    close(fd);
    return n < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static int spawn(char **argv) {
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

int main(int argc, char **argv) {
    int json = 0, rc;
    if (argc >= 3 && strcmp(argv[1], "--fsync") == 0)
        return fsync_latency(argv[2], argc > 3 ? atoi(argv[3]) : 30);
    if (argc >= 4 && strcmp(argv[1], "--splice") == 0) {
        rc = splice_copy(argv[2], argv + 3);
        printf("%ld bytes spliced\n", bytes);
        return rc;
    }
    if (argc >= 3 && strcmp(argv[1], "--spawn") == 0) return spawn(argv + 2);
    if (argc >= 3 && strcmp(argv[1], "--json") == 0) json = 1, argv++, argc--;
    if (argc != 2 && !(argc == 4 && (!strcmp(argv[2], "--pids") || !strcmp(argv[2], "--tree")))) {
        fprintf(stderr, "usage: floor [--json] DIR [--pids FILE | --tree FILE] | floor --fsync DIR "
                        "[N] | floor --splice FILE CMD... | floor --spawn CMD...\n");
        return 2;
    }
    rc = read_dir(argv[1], json);
    if (!rc && argc == 4) rc = strcmp(argv[2], "--pids") == 0 ? liveness(argv[3]) : trees(argv[3]);
    printf("%ld files, %ld bytes, %ld processes\n", files, bytes, procs);
    return rc;
}
