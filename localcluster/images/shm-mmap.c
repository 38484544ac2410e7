/* shm-mmap: write N MiB into a file in /dev/shm through a MAP_SHARED mapping, as PyTorch's
 * shared-memory tensors, DataLoader workers and Ray's object store do (built with gcc -static).
 *
 *   shm-mmap MIB [PATH] [--hold]      PATH defaults to /dev/shm/shm-mmap
 *
 * ftruncate() makes the file MIB MiB long without allocating it (tmpfs files are sparse); every
 * page is allocated when the program first writes it through the mapping. When the tmpfs is full
 * that page fault cannot be served and the kernel sends SIGBUS: the process dies with "Bus error"
 * (exit status 128 + 7 = 135). write() would get ENOSPC instead (what dd shows), mmap never does.
 * After each MiB it prints the bytes written so far (unbuffered), so the output ends with the
 * figure reached before the signal. --hold: after writing, keep the mapping and wait for SIGTERM
 * (a long-running pod); exit 0 on SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static void on_term(int sig) { (void)sig; _exit(0); }

static void say(const char *fmt, long mib, long bytes, const char *path) {
    char line[256];
    int n = snprintf(line, sizeof line, fmt, mib, bytes, path);
    if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0) _exit(3);
}

int main(int argc, char **argv) {
    const char *path = "/dev/shm/shm-mmap";
    int hold = 0;
    long mib = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hold") == 0) hold = 1;
        else if (mib < 0) mib = strtol(argv[i], NULL, 10);
        else path = argv[i];
    }
    if (mib <= 0) {
        fprintf(stderr, "usage: shm-mmap MIB [PATH] [--hold]\n");
        return 2;
    }
    struct sigaction term = {.sa_handler = on_term};
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGINT, &term, NULL);

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, mib * MIB) < 0) {
        fprintf(stderr, "shm-mmap: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *map = mmap(NULL, (size_t)(mib * MIB), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "shm-mmap: mmap %s: %s\n", path, strerror(errno));
        return 1;
    }
    say("shm-mmap: writing %ld MiB (%ld bytes) through a MAP_SHARED mapping of %s\n", mib, mib * MIB, path);
    for (long i = 0; i < mib; i++) {
        memset(map + i * MIB, 0xa5, (size_t)MIB); /* SIGBUS here once the tmpfs is full */
        say("shm-mmap: written %ld MiB (%ld bytes)%s\n", i + 1, (i + 1) * MIB, "");
    }
    say("shm-mmap: done: %ld MiB (%ld bytes) written to %s\n", mib, mib * MIB, path);
    if (hold)
        for (;;) pause();
    return 0;
}
