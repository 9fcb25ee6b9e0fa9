/* Torture cases for roar's tracer: `torture CASE [ARGS]` runs in the current directory.
 * Compiled by tests/test_torture.py (dynamically and with -static). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if ((x) < 0) { perror(#x); exit(99); } } while (0)

static void put(int fd, const char *s) { CHECK(write(fd, s, strlen(s))); }
static void slurp(int fd) { char b[4096]; while (read(fd, b, sizeof b) > 0) {} }
static void readfile(const char *p) { int fd = open(p, O_RDONLY); CHECK(fd); slurp(fd); close(fd); }
static void writefile(const char *p, const char *s)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd); put(fd, s); close(fd);
}

static int g_fd;
static void *thread_write(void *arg) { (void)arg; put(g_fd, "from a thread\n"); return NULL; }

int main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "open")) {          /* in -> out */
        readfile("in");
        writefile("out", "out\n");
    } else if (!strcmp(c, "openat")) { /* sub/in -> sub/out via a dirfd */
        int d = open("sub", O_RDONLY | O_DIRECTORY); CHECK(d);
        int fd = openat(d, "in", O_RDONLY); CHECK(fd); slurp(fd); close(fd);
        fd = openat(d, "out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd); put(fd, "x\n");
    } else if (!strcmp(c, "openat2")) {
        struct open_how how = {.flags = O_RDONLY};
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, "in", &how, sizeof how); CHECK(fd); slurp(fd);
        struct open_how w = {.flags = O_WRONLY | O_CREAT | O_TRUNC, .mode = 0644};
        fd = (int)syscall(SYS_openat2, AT_FDCWD, "out", &w, sizeof w); CHECK(fd); put(fd, "y\n");
    } else if (!strcmp(c, "creat")) {
        int fd = creat("out", 0644); CHECK(fd); put(fd, "c\n");
    } else if (!strcmp(c, "rdwr_read")) { /* O_RDWR, only read */
        int fd = open("f", O_RDWR); CHECK(fd); slurp(fd);
    } else if (!strcmp(c, "rdwr_write")) { /* O_RDWR, written in place */
        int fd = open("f", O_RDWR); CHECK(fd); slurp(fd); put(fd, "more\n");
    } else if (!strcmp(c, "rdwr_trunc")) {
        int fd = open("f", O_RDWR | O_TRUNC); CHECK(fd); put(fd, "new\n");
    } else if (!strcmp(c, "append")) {
        int fd = open("log", O_WRONLY | O_APPEND); CHECK(fd); put(fd, "line 2\n");
    } else if (!strcmp(c, "tmpfile")) { /* O_TMPFILE, then linked into place via /proc/self/fd */
        int fd = open(".", O_TMPFILE | O_WRONLY, 0644); CHECK(fd); put(fd, "anonymous\n");
        char p[64]; snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        CHECK(linkat(AT_FDCWD, p, AT_FDCWD, "out", AT_SYMLINK_FOLLOW));
    } else if (!strcmp(c, "tmpfile_empty")) { /* linkat AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH) */
        int fd = open(".", O_TMPFILE | O_WRONLY, 0644); CHECK(fd); put(fd, "anonymous\n");
        CHECK(linkat(fd, "", AT_FDCWD, "out", AT_EMPTY_PATH));
    } else if (!strcmp(c, "rename")) {
        writefile("out.tmp", "renamed\n");
        CHECK(rename("out.tmp", "out"));
    } else if (!strcmp(c, "exchange")) { /* a <-> b */
        CHECK(syscall(SYS_renameat2, AT_FDCWD, "a", AT_FDCWD, "b", RENAME_EXCHANGE));
    } else if (!strcmp(c, "hardlink")) {
        readfile("in");
        CHECK(link("in", "lnk"));
    } else if (!strcmp(c, "read")) {  /* read each argument (errors ignored) */
        for (int i = 2; i < argc; i++) { int fd = open(argv[i], O_RDONLY); if (fd >= 0) { slurp(fd); close(fd); } }
    } else if (!strcmp(c, "write")) { /* write each argument (errors ignored) */
        for (int i = 2; i < argc; i++) { int fd = open(argv[i], O_WRONLY | O_CREAT | O_TRUNC, 0644); if (fd >= 0) { put(fd, "w\n"); close(fd); } }
    } else if (!strcmp(c, "rdonly_creat")) { /* O_RDONLY|O_CREAT: creates "made", reads "in" */
        int fd = open("made", O_RDONLY | O_CREAT, 0644); CHECK(fd); slurp(fd); close(fd);
        fd = open("in", O_RDONLY | O_CREAT, 0644); CHECK(fd); slurp(fd);
    } else if (!strcmp(c, "dup")) {   /* written only through duplicates */
        int fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd);
        int a = dup(fd), b = dup2(fd, 20), d3 = dup3(fd, 21, O_CLOEXEC), f = fcntl(fd, F_DUPFD, 30);
        close(fd);
        put(a, "a"); put(b, "b"); put(d3, "c"); put(f, "d\n");
        int in = open("in", O_RDONLY); CHECK(in); int in2 = dup(in); close(in); slurp(in2);
    } else if (!strcmp(c, "inherit")) { /* fd 3 opened here, written by an exec'd child */
        int fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd);
        CHECK(dup2(fd, 3));
        pid_t p = fork(); CHECK(p);
        if (p == 0) { execl("/bin/sh", "sh", "-c", "echo child >&3", (char *)NULL); _exit(98); }
        int st; waitpid(p, &st, 0);
    } else if (!strcmp(c, "thread")) { /* opened by one thread, written by another */
        g_fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(g_fd);
        pthread_t th; pthread_create(&th, NULL, thread_write, NULL); pthread_join(th, NULL);
    } else if (!strcmp(c, "thread_open")) { /* opened in a thread */
        pthread_t th; g_fd = -1;
        pthread_create(&th, NULL, (void *(*)(void *))readfile, "in"); pthread_join(th, NULL);
    } else if (!strcmp(c, "sendfile")) {
        int in = open("in", O_RDONLY); CHECK(in);
        int out = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(out);
        struct stat st; fstat(in, &st);
        CHECK(sendfile(out, in, NULL, (size_t)st.st_size));
    } else if (!strcmp(c, "splice")) {
        int in = open("in", O_RDONLY); CHECK(in);
        int out = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(out);
        int p[2]; CHECK(pipe(p));
        ssize_t n;
        while ((n = splice(in, NULL, p[1], NULL, 65536, 0)) > 0)
            CHECK(splice(p[0], NULL, out, NULL, (size_t)n, 0));
    } else if (!strcmp(c, "mmap")) { /* input and output through MAP_SHARED mappings */
        int in = open("in", O_RDONLY); CHECK(in);
        struct stat st; fstat(in, &st);
        char *src = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, in, 0);
        close(in);
        int out = open("out", O_RDWR | O_CREAT, 0644); CHECK(out);
        CHECK(ftruncate(out, st.st_size));
        char *dst = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
        close(out);
        for (off_t i = 0; i < st.st_size; i++) dst[i] = (char)(src[i] ^ 1);
        munmap(dst, (size_t)st.st_size);
    } else if (!strcmp(c, "mmap_existing")) { /* an existing file changed only through mmap */
        int fd = open("f", O_RDWR); CHECK(fd);
        char *m = mmap(NULL, 4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        m[0] = 'X';
        munmap(m, 4);
    } else if (!strcmp(c, "fork")) {
        pid_t p = fork(); CHECK(p);
        if (p == 0) { readfile("in"); writefile("child_out", "c\n"); _exit(0); }
        int st; waitpid(p, &st, 0);
        writefile("parent_out", "p\n");
    } else if (!strcmp(c, "vfork")) {
        pid_t p = vfork(); CHECK(p);
        if (p == 0) { execl("/bin/cp", "cp", "in", "out", (char *)NULL); _exit(98); }
        int st; waitpid(p, &st, 0);
    } else if (!strcmp(c, "daemon")) { /* a child that outlives its parent by 300 ms */
        pid_t p = fork(); CHECK(p);
        if (p == 0) {
            setsid();
            if (fork() == 0) { usleep(300000); readfile("in"); writefile("late", "late\n"); _exit(0); }
            _exit(0);
        }
        int st; waitpid(p, &st, 0);
    } else if (!strcmp(c, "killed")) { /* killed by a signal mid-write */
        int fd = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd);
        put(fd, "partial");
        raise(SIGKILL);
    } else if (!strcmp(c, "deep")) { /* a path longer than PATH_MAX, reached through dirfds */
        char name[201]; memset(name, 'd', 200); name[200] = 0;
        int d = AT_FDCWD;
        for (int i = 0; i < 25; i++) {
            mkdirat(d, name, 0755);
            int nd = openat(d, name, O_RDONLY | O_DIRECTORY); CHECK(nd);
            d = nd;
        }
        int fd = openat(d, "deep_out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(fd); put(fd, "deep\n");
    } else if (!strcmp(c, "fchdir")) { /* fchdir, then relative names */
        int d = open("sub", O_RDONLY | O_DIRECTORY); CHECK(d);
        CHECK(fchdir(d));
        readfile("in");
        writefile("out", "f\n");
    } else if (!strcmp(c, "memfd")) { /* anonymous memory file, then copied to disk */
        int m = (int)syscall(SYS_memfd_create, "scratch", 0); CHECK(m);
        put(m, "from memfd\n");
        lseek(m, 0, SEEK_SET);
        int out = open("out", O_WRONLY | O_CREAT | O_TRUNC, 0644); CHECK(out);
        char b[64]; ssize_t n = read(m, b, sizeof b); CHECK(write(out, b, (size_t)n));
    } else if (!strcmp(c, "many_missing")) { /* N opens of distinct nonexistent paths */
        long n = argc > 2 ? atol(argv[2]) : 1000;
        char p[64];
        for (long i = 0; i < n; i++) { snprintf(p, sizeof p, "missing/%ld", i); open(p, O_RDONLY); }
    } else if (!strcmp(c, "many_existing")) { /* N opens cycling over files/0 .. files/K-1 */
        long n = argc > 2 ? atol(argv[2]) : 1000, k = argc > 3 ? atol(argv[3]) : 10;
        char p[64];
        for (long i = 0; i < n; i++) {
            snprintf(p, sizeof p, "files/%ld", i % k);
            int fd = open(p, O_RDONLY); if (fd >= 0) close(fd);
        }
    } else if (!strcmp(c, "io_uring")) {
#ifdef SYS_io_uring_setup
        char params[120]; memset(params, 0, sizeof params);
        long fd = syscall(SYS_io_uring_setup, 4, params);
        return fd < 0 ? 77 : 0;
#else
        return 77;
#endif
    } else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    return 0;
}
