/* floor: the I/O floor of `flatline status` (SPEC §8) — opens, reads and closes every file of
 * one directory, and does nothing else: no parsing, no sorting, no output per file.
 *
 *   floor DIR      prints "<files> files, <bytes> bytes" once at the end
 *
 * openat() relative to the directory's descriptor, read() into one reused 64 KiB buffer until
 * end of file (two reads for a 2 KB file, as any reader that does not trust the size needs),
 * close(). Built by bench/run.sh with `cc -O2`; only libc.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char buf[1 << 16];
    if (argc != 2) {
        fprintf(stderr, "usage: floor DIR\n");
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (!dir) {
        perror(argv[1]);
        return 1;
    }
    int dfd = dirfd(dir);
    long files = 0;
    long long bytes = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        int fd = openat(dfd, entry->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            perror(entry->d_name);
            return 1;
        }
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) bytes += n;
        if (n < 0) {
            perror(entry->d_name);
            return 1;
        }
        close(fd);
        files++;
    }
    closedir(dir);
    printf("%ld files, %lld bytes\n", files, bytes);
    return 0;
}
