// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0
//
// The fileless-capture tests' helper: runs a program the ways droppers do without a file a
// watch would see. Modes:
//   fexecve PROGRAM ARGS...        copy PROGRAM into a memfd and fexecve it
//   execveat PROGRAM ARGS...       the same through execveat(fd, "", AT_EMPTY_PATH)
//   fork-fexecve PROGRAM ARGS...   fork; the child does `fexecve`, this process waits for it
//   self-delete SECONDS            unlink its own executable, then sleep
//   map-exec SECONDS               map code from a memfd executable and call it (no exec), then sleep
// Each prints "ready <pid>" on stdout once the thing is done, where the test can wait for it.

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *what) {
    perror(what);
    return 2;
}

/// A memfd holding PROGRAM's bytes, or -1.
static int memfd_of(const char *program) {
    int in = open(program, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = memfd_create("payload", 0);
    if (out < 0) return -1;
    char buffer[65536];
    ssize_t count;
    while ((count = read(in, buffer, sizeof buffer)) > 0) {
        if (write(out, buffer, (size_t)count) != count) return -1;
    }
    close(in);
    return count < 0 ? -1 : out;
}

static int run_from_memfd(char **argv, int use_execveat) {
    int fd = memfd_of(argv[0]);
    if (fd < 0) return fail("memfd");
    if (use_execveat) {
        syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
        return fail("execveat");
    }
    fexecve(fd, argv, environ);
    return fail("fexecve");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fileless-probe MODE ARGS...\n");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "fexecve") == 0) return run_from_memfd(argv + 2, 0);
    if (strcmp(mode, "execveat") == 0) return run_from_memfd(argv + 2, 1);
    if (strcmp(mode, "fork-fexecve") == 0) {
        pid_t child = fork();
        if (child < 0) return fail("fork");
        if (child == 0) return run_from_memfd(argv + 2, 0);
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    unsigned seconds = (unsigned)atoi(argv[2]);
    if (strcmp(mode, "self-delete") == 0) {
        char self[4096];
        ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
        if (length < 0) return fail("readlink");
        self[length] = 0;
        if (unlink(self) != 0) return fail("unlink");
        printf("ready %d\n", getpid());
        fflush(stdout);
        sleep(seconds);
        return 0;
    }
    if (strcmp(mode, "map-exec") == 0) {
#if defined(__x86_64__)
        static const unsigned char code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};  // mov eax, 42; ret
#elif defined(__aarch64__)
        static const unsigned char code[] = {0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6};  // mov w0, #42; ret
#else
        fprintf(stderr, "map-exec: no code for this architecture\n");
        return 3;
#endif
        int fd = memfd_create("jit", 0);
        if (fd < 0) return fail("memfd_create");
        long page = sysconf(_SC_PAGESIZE);
        if (ftruncate(fd, page) != 0 || pwrite(fd, code, sizeof code, 0) != (ssize_t)sizeof code) {
            return fail("write");
        }
        void *mapped = mmap(NULL, (size_t)page, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (mapped == MAP_FAILED) return fail("mmap");
        close(fd);
        int (*function)(void) = (int (*)(void))mapped;
        if (function() != 42) return 4;
        printf("ready %d\n", getpid());
        fflush(stdout);
        sleep(seconds);
        return 0;
    }
    fprintf(stderr, "fileless-probe: unknown mode %s\n", mode);
    return 2;
}
