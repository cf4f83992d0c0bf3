/* activity-floor: the least work the activity sample of SPEC §11 needs, for bench/activity.sh.
 *
 *   activity-floor PID...
 *       One scan of /proc: /proc/N/stat of every process read once (parent, start time and
 *       CPU), the tree of each given pid found from the parent links, then /proc/P/io of every
 *       process of those trees read once. Prints the number of tree processes and the sums,
 *       so the work cannot be optimised away.
 *
 * Built by bench/activity.sh with `cc -O2`; only libc.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct proc {
    int pid, ppid;
    unsigned long long start, cpu;
};

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return (int)n;
}

int main(int argc, char **argv) {
    static struct proc procs[1 << 16];
    int count = 0;
    char path[64], buf[4096];
    DIR *dir = opendir("/proc");
    if (!dir) return 1;
    struct dirent *e;
    while ((e = readdir(dir)) && count < (1 << 16)) {
        int pid = atoi(e->d_name);
        if (pid <= 0) continue;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        if (read_file(path, buf, sizeof buf) < 0) continue;
        char *close_paren = strrchr(buf, ')');
        if (!close_paren) continue;
        struct proc p = {.pid = pid};
        unsigned long long f[20] = {0};
        char state;
        /* After ")": state ppid ... utime(14) stime cutime cstime ... starttime(22). */
        if (sscanf(close_paren + 2,
                   "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d %*d %*d %llu",
                   &state, &p.ppid, &f[0], &f[1], &f[2], &f[3], &p.start) != 7)
            continue;
        p.cpu = f[0] + f[1] + f[2] + f[3];
        procs[count++] = p;
    }
    closedir(dir);
    unsigned long long cpu = 0, io = 0;
    int tree = 0;
    int *queue = malloc(sizeof(int) * (count + 1));
    for (int a = 1; a < argc; a++) {
        int head = 0, tail = 0;
        queue[tail++] = atoi(argv[a]);
        while (head < tail) {
            int pid = queue[head++];
            for (int i = 0; i < count; i++) {
                if (procs[i].pid == pid) cpu += procs[i].cpu;
                if (procs[i].ppid == pid && tail < count) queue[tail++] = procs[i].pid;
            }
            snprintf(path, sizeof path, "/proc/%d/io", pid);
            if (read_file(path, buf, sizeof buf) > 0) {
                char *r = strstr(buf, "rchar:"), *w = strstr(buf, "wchar:");
                if (r) io += strtoull(r + 6, NULL, 10);
                if (w) io += strtoull(w + 6, NULL, 10);
            }
            tree++;
        }
    }
    printf("%d %llu %llu\n", tree, cpu, io);
    return 0;
}
