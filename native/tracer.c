/* roar ptrace tracer.
 *
 * The calling process forks the command and becomes its tracer.  A seccomp-bpf
 * filter installed in the child (before execve) makes only the file/process
 * syscalls we care about stop with PTRACE_EVENT_SECCOMP; everything else runs at
 * full speed.  There are no syscall-exit stops (no PTRACE_SYSCALL).
 *
 * Stops handled: seccomp stops, fork/vfork/clone/exec event stops, signal-delivery
 * stops (signal re-injected), group-stops (PTRACE_LISTEN), the initial stop of
 * auto-attached children, and exits.
 *
 * While one traced task does the work, the tracer and that task are pinned to one
 * CPU (cross-CPU wakeups double the cost of a stop); parallel work is never
 * confined.  Policy and the ROAR_PIN=0 opt-out: tracer.h, roar_start.
 */
#define _GNU_SOURCE
#include "tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_REMOVEDIR
#define AT_REMOVEDIR 0x200
#endif
#ifndef CLONE_THREAD
#define CLONE_THREAD 0x00010000
#endif

#if defined(__x86_64__) && !defined(__ILP32__)
#define ROAR_AUDIT_ARCH AUDIT_ARCH_X86_64
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
#define ROAR_X32_CHECK 1
#elif defined(__aarch64__)
#define ROAR_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define ROAR_X32_CHECK 0
#elif defined(__riscv) && __riscv_xlen == 64
#define ROAR_AUDIT_ARCH AUDIT_ARCH_RISCV64
#define ROAR_X32_CHECK 0
#else
#error "roar tracer: unsupported architecture (need an AUDIT_ARCH for the seccomp filter)"
#endif

#define PATH_CAP (64 * 1024)   /* longest path string read from a tracee */
#define ARGV_CAP (128 * 1024)  /* total argv bytes kept for an exec */
#define ARENA_BLOCK (64 * 1024)

/* ------------------------------------------------------------------------- */
/* Syscall table: built from the platform's SYS_* macros, never from numbers.  */

enum sc_kind {
    SC_OPEN = 1, SC_CREAT, SC_OPENAT, SC_OPENAT2, SC_EXECVE, SC_EXECVEAT,
    SC_RENAME, SC_RENAMEAT, SC_RENAMEAT2, SC_LINK, SC_LINKAT, SC_SYMLINK,
    SC_SYMLINKAT, SC_UNLINK, SC_UNLINKAT, SC_TRUNCATE, SC_IO_URING, SC_PTRACE, SC_AFFINITY,
    SC_MEMFD, SC_CONNECT, SC_SENDTO
};

static const struct { long nr; int kind; } SYSCALLS[] = {
#ifdef SYS_open
    {SYS_open, SC_OPEN},
#endif
#ifdef SYS_creat
    {SYS_creat, SC_CREAT},
#endif
#ifdef SYS_openat
    {SYS_openat, SC_OPENAT},
#endif
#ifdef SYS_openat2
    {SYS_openat2, SC_OPENAT2},
#endif
#ifdef SYS_execve
    {SYS_execve, SC_EXECVE},
#endif
#ifdef SYS_execveat
    {SYS_execveat, SC_EXECVEAT},
#endif
#ifdef SYS_rename
    {SYS_rename, SC_RENAME},
#endif
#ifdef SYS_renameat
    {SYS_renameat, SC_RENAMEAT},
#endif
#ifdef SYS_renameat2
    {SYS_renameat2, SC_RENAMEAT2},
#endif
#ifdef SYS_link
    {SYS_link, SC_LINK},
#endif
#ifdef SYS_linkat
    {SYS_linkat, SC_LINKAT},
#endif
#ifdef SYS_symlink
    {SYS_symlink, SC_SYMLINK},
#endif
#ifdef SYS_symlinkat
    {SYS_symlinkat, SC_SYMLINKAT},
#endif
#ifdef SYS_unlink
    {SYS_unlink, SC_UNLINK},
#endif
#ifdef SYS_unlinkat
    {SYS_unlinkat, SC_UNLINKAT},
#endif
#ifdef SYS_truncate
    {SYS_truncate, SC_TRUNCATE},
#endif
#ifdef SYS_io_uring_setup
    {SYS_io_uring_setup, SC_IO_URING},
#endif
#ifdef SYS_ptrace
    {SYS_ptrace, SC_PTRACE},
#endif
#ifdef SYS_memfd_create
    {SYS_memfd_create, SC_MEMFD},
#endif
#ifdef SYS_connect
    {SYS_connect, SC_CONNECT},
#endif
};
#define NSYSCALLS ((int)(sizeof SYSCALLS / sizeof SYSCALLS[0]))

/* sendto stops only when it names a destination (args[4] != NULL: an unconnected
 * socket's peer); a plain send() on a connected socket (sendto with NULL) runs at
 * full speed.  Checked by its own block in the filter, not the table above. */
#ifdef SYS_sendto
#define SENDTO_BLOCK 5
#else
#define SENDTO_BLOCK 0
#endif

/* Also stopped at while CPU co-location is on (see tracer.h): a program that asks
 * for (or sets) its affinity must see (or replace) its real mask, not our pin. */
static const long AFFINITY_SYSCALLS[] = {
#ifdef SYS_sched_getaffinity
    SYS_sched_getaffinity,
#endif
#ifdef SYS_sched_setaffinity
    SYS_sched_setaffinity,
#endif
};
#define NAFFINITY ((int)(sizeof AFFINITY_SYSCALLS / sizeof AFFINITY_SYSCALLS[0]))
#define FILTER_MAX (NSYSCALLS + NAFFINITY + 8 + SENDTO_BLOCK)

static int sc_kind_of(long nr)
{
#ifdef SYS_sendto
    if (nr == SYS_sendto)
        return SC_SENDTO;
#endif
    for (int i = 0; i < NSYSCALLS; i++)
        if (SYSCALLS[i].nr == nr)
            return SYSCALLS[i].kind;
    for (int i = 0; i < NAFFINITY; i++)
        if (AFFINITY_SYSCALLS[i] == nr)
            return SC_AFFINITY;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Small growable byte buffer.                                                */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static int sb_reserve(sbuf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int sb_set(sbuf *b, const char *s, size_t n)
{
    if (sb_reserve(b, n + 1) < 0)
        return -1;
    memcpy(b->p, s, n);
    b->p[n] = 0;
    b->len = n;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* String arena for event payloads: reset at the start of every roar_next.    */

typedef struct ablock {
    struct ablock *next;
    size_t cap, used;
    char data[];
} ablock;

/* ------------------------------------------------------------------------- */
/* Per-task state, open-addressed hash keyed by tid.                           */

typedef struct {
    int tid;           /* 0: empty slot */
    int tgid;
    int parent;        /* the tgid that forked it (0: not known) */
    char *exec_path;   /* pending execve filename (absolute), malloc'd */
    char *exec_argv;   /* pending argv, NUL-separated, malloc'd */
    unsigned int exec_path_len, exec_argv_len;
    int has_exec;
} task_t;

#define REAPED_RING 64
#define DEFERRED_MAX 64

struct roar_tracer {
    pid_t root;
    int hold_writes;          /* roar_hold_writes: hold every write-intent open */
    pid_t tracer_tid;         /* ptrace requests only work from the attaching thread */
    int root_status;          /* -1 until reaped */
    /* what the command used (roar_usage): the wait4 rusage of the status being handled,
     * the root's (itself and every descendant it waited for), the largest max RSS seen */
    struct rusage last_ru;
    struct rusage root_ru;
    long max_rss_kb;
    /* processes that outlived their parent (orphans: nobody traced waits for them, so the
     * root's rusage misses them): their own wait4 rusage, summed */
    struct timeval orphan_utime, orphan_stime;
    int ntasks;
    unsigned int tcap;        /* power of two */
    task_t *tasks;

    ablock *arena_head, *arena_cur;

    /* current roar_next call */
    roar_event *ev;
    int evcap, nev, stop_batch;

    pid_t held;               /* tracee stopped at a held event */
    pid_t saved_pid;          /* a status collected by roar_start, handled first */
    int saved_status;
    /* string-less events (EXIT, UNTRACED) that did not fit the batch */
    roar_event deferred[DEFERRED_MAX];
    int ndeferred;

    /* unknown pids we reaped: a tracee killed before its parent's fork event
     * was collected, or a child of the caller that is not ours */
    pid_t reaped[REAPED_RING];
    int reaped_status[REAPED_RING];
    unsigned int reaped_pos;

    sbuf raw, p1, p2, argv;
    struct sock_filter filter[FILTER_MAX];
    unsigned short filter_len;

    /* CPU co-location (policy in tracer.h) */
    int pin;                  /* PIN_OFF, PIN_ON or PIN_IDLE */
    int tracer_pinned;        /* the tracer thread runs on `one` */
    pid_t pinned;             /* the tracee that runs on `one`, 0: none */
    cpu_set_t *orig, *one;    /* caller's original mask; just the chosen CPU */
    cpu_set_t *tmp;           /* scratch mask */
    size_t mask_size;         /* bytes of each mask */
    int mask_cpus;            /* CPUs each mask has room for */
    int claim_fd;             /* the chosen CPU's claim (cpu_claim), -1: none */
    long long last_stop;      /* CLOCK_MONOTONIC ns of the last stop (or resume) */
    int fast;                 /* PIN_IDLE: consecutive stops less than PIN_FAST_NS apart */
    pid_t stale;              /* unpinned since its last stop: a child it forked just
                                 before may still carry the pin */
};

static long page_size;

/* signal forwarding (one tracer at a time per process) */
static volatile sig_atomic_t g_fwd_pid;
static roar_tracer *g_fwd_owner;
static struct sigaction g_old_actions[4];
static const int g_fwd_sigs[4] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};

/* SIGINT and SIGQUIT do not stop the tracer while it lives, as with system(3): the
 * terminal sends them to the command (its foreground group), which decides.  They are
 * only counted (roar_interrupts), so that a caller waiting on something else can tell. */
static roar_tracer *g_ign_owner;
static struct sigaction g_ign_old[2];
static const int g_ign_sigs[2] = {SIGINT, SIGQUIT};
static volatile sig_atomic_t g_interrupts;

static void count_interrupt(int sig)
{
    (void)sig;
    g_interrupts++;
}

static void ignore_interrupts(roar_tracer *t)
{
    if (g_ign_owner)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_interrupt;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++)
        sigaction(g_ign_sigs[i], &sa, &g_ign_old[i]);
    g_ign_owner = t;
}

static void restore_interrupts(roar_tracer *t)
{
    if (g_ign_owner != t)
        return;
    for (int i = 0; i < 2; i++)
        sigaction(g_ign_sigs[i], &g_ign_old[i], NULL);
    g_ign_owner = NULL;
}

static inline unsigned int thash(int tid, unsigned int mask)
{
    return ((unsigned int)tid * 2654435761u) & mask;
}

static task_t *task_find(roar_tracer *t, int tid)
{
    unsigned int mask = t->tcap - 1;
    for (unsigned int i = thash(tid, mask);; i = (i + 1) & mask) {
        if (t->tasks[i].tid == tid)
            return &t->tasks[i];
        if (t->tasks[i].tid == 0)
            return NULL;
    }
}

static void task_put(task_t *tab, unsigned int cap, const task_t *v)
{
    unsigned int mask = cap - 1;
    unsigned int i = thash(v->tid, mask);
    while (tab[i].tid != 0)
        i = (i + 1) & mask;
    tab[i] = *v;
}

/* Returns the (possibly existing) entry; pointers to other entries become invalid. */
static task_t *task_add(roar_tracer *t, int tid, int tgid)
{
    task_t *e = task_find(t, tid);
    if (e)
        return e;
    if ((unsigned int)(t->ntasks + 1) * 2 > t->tcap) {
        unsigned int ncap = t->tcap * 2;
        task_t *nt = calloc(ncap, sizeof *nt);
        if (!nt)
            return NULL;
        for (unsigned int i = 0; i < t->tcap; i++)
            if (t->tasks[i].tid)
                task_put(nt, ncap, &t->tasks[i]);
        free(t->tasks);
        t->tasks = nt;
        t->tcap = ncap;
    }
    task_t v = {.tid = tid, .tgid = tgid};
    task_put(t->tasks, t->tcap, &v);
    t->ntasks++;
    return task_find(t, tid);
}

static void task_clear_exec(task_t *e)
{
    free(e->exec_path);
    free(e->exec_argv);
    e->exec_path = e->exec_argv = NULL;
    e->exec_path_len = e->exec_argv_len = 0;
    e->has_exec = 0;
}

/* Backward-shift deletion keeps probing chains intact without tombstones. */
static void task_del(roar_tracer *t, int tid)
{
    task_t *e = task_find(t, tid);
    if (!e)
        return;
    task_clear_exec(e);
    unsigned int mask = t->tcap - 1;
    unsigned int i = (unsigned int)(e - t->tasks);
    unsigned int j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t->tasks[j].tid == 0)
            break;
        unsigned int k = thash(t->tasks[j].tid, mask);
        /* move j to i if k is cyclically outside (i, j] */
        int outside = (i <= j) ? (k <= i || k > j) : (k <= i && k > j);
        if (outside) {
            t->tasks[i] = t->tasks[j];
            i = j;
        }
    }
    memset(&t->tasks[i], 0, sizeof t->tasks[i]);
    t->ntasks--;
}

/* ------------------------------------------------------------------------- */
/* Arena                                                                     */

static void arena_reset(roar_tracer *t)
{
    t->arena_cur = t->arena_head;
    if (t->arena_cur)
        t->arena_cur->used = 0;
}

static char *arena_alloc(roar_tracer *t, size_t n)
{
    ablock *b = t->arena_cur;
    if (b && b->cap - b->used >= n) {
        char *p = b->data + b->used;
        b->used += n;
        return p;
    }
    /* move on to the next kept block if it is big enough, else insert a new one */
    if (b && b->next && b->next->cap >= n) {
        b = b->next;
        b->used = n;
        t->arena_cur = b;
        return b->data;
    }
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    ablock *nb = malloc(sizeof *nb + cap);
    if (!nb)
        return NULL;
    nb->cap = cap;
    nb->used = n;
    if (b) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = NULL;
        t->arena_head = nb;
    }
    t->arena_cur = nb;
    return nb->data;
}

static const char *arena_dup(roar_tracer *t, const char *s, size_t n, unsigned int *outlen)
{
    char *p = arena_alloc(t, n + 1);
    if (!p) {
        *outlen = 0;
        return "";
    }
    memcpy(p, s, n);
    p[n] = 0;
    *outlen = (unsigned int)n;
    return p;
}

/* ------------------------------------------------------------------------- */
/* Reading tracee memory and /proc                                            */

/* Read a NUL-terminated string at addr into b (NUL-terminated, b->len excludes it).
 * Reads up to page ends so an unmapped next page never fails the read. */
static int read_cstr(pid_t tid, uint64_t addr, sbuf *b, size_t max)
{
    b->len = 0;
    if (addr == 0)
        return -1;
    while (b->len < max) {
        size_t chunk = (size_t)page_size - (size_t)(addr % (uint64_t)page_size);
        if (chunk > max - b->len)
            chunk = max - b->len;
        if (sb_reserve(b, b->len + chunk + 1) < 0)
            return -1;
        struct iovec l = {b->p + b->len, chunk};
        struct iovec r = {(void *)(uintptr_t)addr, chunk};
        ssize_t n = process_vm_readv(tid, &l, 1, &r, 1, 0);
        if (n <= 0)
            return -1;
        char *z = memchr(b->p + b->len, 0, (size_t)n);
        if (z) {
            b->len = (size_t)(z - b->p);
            return 0;
        }
        b->len += (size_t)n;
        addr += (uint64_t)n;
    }
    b->p[b->len] = 0; /* truncated at max */
    return 0;
}

static int read_mem(pid_t tid, uint64_t addr, void *dst, size_t n)
{
    struct iovec l = {dst, n};
    struct iovec r = {(void *)(uintptr_t)addr, n};
    return process_vm_readv(tid, &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* readlink("/proc/TID/<what>") into buf; returns length or -1. */
static ssize_t proc_link(pid_t tid, const char *what, char *buf, size_t sz)
{
    char lp[64];
    snprintf(lp, sizeof lp, "/proc/%d/%s", (int)tid, what);
    ssize_t n = readlink(lp, buf, sz);
    if (n < 0 || (size_t)n >= sz)
        return -1;
    buf[n] = 0;
    return n;
}

static ssize_t dir_link(pid_t tid, int dirfd, char *buf, size_t sz)
{
    if (dirfd == AT_FDCWD)
        return proc_link(tid, "cwd", buf, sz);
    char what[32];
    snprintf(what, sizeof what, "fd/%d", dirfd);
    return proc_link(tid, what, buf, sz);
}

/* Read the path at addr and make it absolute (no normalization) into out.
 * dirfd is AT_FDCWD for the non-at syscalls.  empty_ok: AT_EMPTY_PATH was given,
 * so "" means the file dirfd refers to.  Returns 0, or -1 when there is nothing
 * worth reporting (unreadable pointer, empty path: the syscall itself fails). */
static int resolve(roar_tracer *t, pid_t tid, int dirfd, uint64_t addr, int empty_ok, sbuf *out)
{
    sbuf *raw = &t->raw;
    if (read_cstr(tid, addr, raw, PATH_CAP) < 0)
        return -1;
    if (raw->len > 0 && raw->p[0] == '/')
        return sb_set(out, raw->p, raw->len);
    if (raw->len == 0 && !empty_ok)
        return -1;
    char base[PATH_MAX * 2];
    ssize_t bl = dir_link(tid, dirfd, base, sizeof base);
    if (bl < 0) /* cannot resolve: report the path as given */
        return sb_set(out, raw->p, raw->len);
    if (raw->len == 0)
        return sb_set(out, base, (size_t)bl);
    size_t sep = (bl > 0 && base[bl - 1] == '/') ? 0 : 1;
    if (sb_reserve(out, (size_t)bl + sep + raw->len + 1) < 0)
        return -1;
    memcpy(out->p, base, (size_t)bl);
    if (sep)
        out->p[bl] = '/';
    memcpy(out->p + bl + sep, raw->p, raw->len);
    out->len = (size_t)bl + sep + raw->len;
    out->p[out->len] = 0;
    return 0;
}

/* Read argv (pointer array) into out as NUL-terminated strings, capped. */
static void read_argv(roar_tracer *t, pid_t tid, uint64_t addr, sbuf *out)
{
    out->len = 0;
    if (addr == 0)
        return;
    uint64_t ptrs[512];
    for (;;) {
        size_t want = (size_t)page_size - (size_t)(addr % (uint64_t)page_size);
        if (want > sizeof ptrs)
            want = sizeof ptrs;
        if (want < sizeof(uint64_t))
            want = sizeof(uint64_t);
        want -= want % sizeof(uint64_t);
        struct iovec l = {ptrs, want};
        struct iovec r = {(void *)(uintptr_t)addr, want};
        ssize_t n = process_vm_readv(tid, &l, 1, &r, 1, 0);
        if (n < (ssize_t)sizeof(uint64_t))
            return;
        size_t cnt = (size_t)n / sizeof(uint64_t);
        for (size_t i = 0; i < cnt; i++) {
            if (ptrs[i] == 0)
                return;
            if (out->len >= ARGV_CAP)
                return;
            if (read_cstr(tid, ptrs[i], &t->raw, ARGV_CAP - out->len) < 0)
                return;
            if (sb_reserve(out, out->len + t->raw.len + 1) < 0)
                return;
            memcpy(out->p + out->len, t->raw.p, t->raw.len);
            out->len += t->raw.len;
            out->p[out->len++] = 0;
        }
        addr += cnt * sizeof(uint64_t);
    }
}

/* Fallback when execve's arguments were not captured: /proc/PID/cmdline. */
static void read_cmdline(pid_t pid, sbuf *out)
{
    char p[64];
    out->len = 0;
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    while (out->len < ARGV_CAP) {
        if (sb_reserve(out, out->len + 4096) < 0)
            break;
        ssize_t n = read(fd, out->p + out->len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        out->len += (size_t)n;
    }
    close(fd);
}

static int proc_tgid(pid_t tid)
{
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%d/status", (int)tid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *s = strstr(buf, "\nTgid:");
    return s ? atoi(s + 6) : -1;
}

/* ------------------------------------------------------------------------- */
/* CPU co-location (policy in tracer.h)                                        */

enum { PIN_OFF = 0, PIN_ON = 1, PIN_IDLE = 2 };
#define PIN_IDLE_NS 1000000000LL /* no stop for this long: unpin (co-location gains nothing) */
#define PIN_FAST_NS 2000000LL    /* stops closer than this ... */
#define PIN_REARM 64             /* ... this many times in a row: pin again */

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int set_mask(roar_tracer *t, pid_t tid, const cpu_set_t *m)
{
    return sched_setaffinity(tid, t->mask_size, m);
}

/* Some live tracee other than `except` (the only one when ntasks == 1), 0 if none. */
static pid_t any_task(roar_tracer *t, pid_t except)
{
    for (unsigned int i = 0; i < t->tcap; i++)
        if (t->tasks[i].tid && t->tasks[i].tid != except)
            return t->tasks[i].tid;
    return 0;
}

/* Claim `cpu` against other roar tracers on this machine (whatever their user) by
 * binding the abstract socket "roar-pin-cpu-N": freed when closed or when this
 * process dies.  Returns the fd, -1 when claims are unavailable here (pin anyway),
 * -2 when another tracer holds the CPU. */
static int cpu_claim(int cpu)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "roar-pin-cpu-%d", cpu);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (bind(fd, (struct sockaddr *)&a, len) == 0)
        return fd;
    int e = errno;
    close(fd);
    return e == EADDRINUSE ? -2 : -1;
}

/* Choose and claim the CPU to co-locate on: the tracer's current CPU if it is in the
 * original mask and free, else the next free one in the mask.  -1: none is free. */
static int pin_choose(roar_tracer *t)
{
    int n = t->mask_cpus;
    int first = sched_getcpu();
    if (first < 0 || first >= n)
        first = 0;
    for (int k = 0; k < n; k++) {
        int cpu = (first + k) % n;
        if (!CPU_ISSET_S((size_t)cpu, t->mask_size, t->orig))
            continue;
        int fd = cpu_claim(cpu);
        if (fd == -2)
            continue;
        t->claim_fd = fd;
        CPU_ZERO_S(t->mask_size, t->one);
        CPU_SET_S((size_t)cpu, t->mask_size, t->one);
        return 0;
    }
    return -1;
}

/* Give the pinned tracee and the tracer back the original mask, free the CPU
 * claim (idempotent). */
static void pin_release(roar_tracer *t)
{
    if (t->pinned) {
        set_mask(t, t->pinned, t->orig); /* ESRCH: it is exiting, nothing to restore */
        t->stale = t->pinned;
        t->pinned = 0;
    }
    if (t->tracer_pinned) {
        set_mask(t, t->tracer_tid, t->orig);
        t->tracer_pinned = 0;
    }
    if (t->claim_fd >= 0) {
        close(t->claim_fd);
        t->claim_fd = -1;
    }
}

/* Stop co-locating for the rest of the run: every live tracee (new ones included:
 * they inherited their parent's mask) and the tracer get the original mask back. */
static void pin_off(roar_tracer *t)
{
    if (t->pin == PIN_ON)
        for (unsigned int i = 0; i < t->tcap; i++)
            if (t->tasks[i].tid && t->tasks[i].tid != t->pinned)
                set_mask(t, t->tasks[i].tid, t->orig);
    pin_release(t);
    t->pin = PIN_OFF;
}

/* Run `tid` (0: none yet) on the tracer's CPU, claiming one first if needed. */
static void pin_colocate(roar_tracer *t, pid_t tid)
{
    if (!t->tracer_pinned) {
        if (pin_choose(t) < 0) { /* every CPU is taken by other roar runs */
            t->pin = PIN_IDLE;
            t->fast = 0;
            return;
        }
        if (set_mask(t, t->tracer_tid, t->one) < 0) {
            pin_off(t);
            return;
        }
        t->tracer_pinned = 1;
    }
    if (tid && tid != t->pinned) {
        if (set_mask(t, tid, t->one) < 0 && errno != ESRCH) {
            pin_off(t);
            return;
        }
        t->pinned = tid;
    }
}

/* At every stop or exit collected while co-location is on or idle. */
static void pin_tick(roar_tracer *t)
{
    long long now = mono_ns(), gap = now - t->last_stop;
    t->last_stop = now;
    if (t->pin == PIN_ON) {
        if (gap > PIN_IDLE_NS) { /* a second without a stop: nothing to gain, unpin */
            pin_release(t);
            t->pin = PIN_IDLE;
            t->fast = 0;
        }
    } else if (t->pin == PIN_IDLE) {
        t->fast = gap < PIN_FAST_NS ? t->fast + 1 : 0;
        if (t->fast >= PIN_REARM && t->ntasks == 1) {
            t->pin = PIN_ON;
            pin_colocate(t, any_task(t, 0));
        }
    }
}

/* A new task `child` is in the table.  thread: 1, 0, or -1 when not known yet.
 * Called while t->pin is on or idle, or t->stale is set. */
static void pin_new_task(roar_tracer *t, pid_t child, int thread)
{
    if (t->stale && t->pin != PIN_ON && sched_getaffinity(child, t->mask_size, t->tmp) == 0 &&
        CPU_EQUAL_S(t->mask_size, t->tmp, t->one))
        set_mask(t, child, t->orig); /* forked by t->stale while it still had the pin */
    if (t->pin == PIN_OFF)
        return;
    if (thread == 1 || t->ntasks > 2) {
        pin_off(t);
        return;
    }
    if (t->pin != PIN_ON || t->ntasks != 2)
        return; /* idle: every task already has the original mask */
    if (thread < 0 && proc_tgid(child) != child) {
        pin_off(t);
        return;
    }
    /* A lone process forked: the child (which inherited the pin) makes the stops
     * from now on; the parent, usually waiting for it, gets the original mask.  The
     * parent making a traced syscall while the child lives ends co-location. */
    pid_t parent = any_task(t, child);
    if (set_mask(t, child, t->one) < 0 && errno != ESRCH) {
        pin_off(t);
        return;
    }
    if (parent && set_mask(t, parent, t->orig) < 0 && errno != ESRCH) {
        pin_off(t);
        return;
    }
    t->pinned = child;
}

/* A traced syscall or exec by `tid`: a second busy task means parallel work. */
static inline void pin_active(roar_tracer *t, pid_t tid)
{
    if (t->pin == PIN_ON && t->ntasks >= 2 && tid != t->pinned)
        pin_off(t);
}

/* `tid` left the table. */
static void pin_gone(roar_tracer *t, pid_t tid)
{
    if (tid == t->pinned)
        t->pinned = 0;
    if (t->ntasks == 0)
        pin_release(t);
    else if (t->pin == PIN_ON && t->ntasks == 1)
        pin_colocate(t, any_task(t, 0));
}

/* At roar_start, before the fork (the child inherits the tracer's pin). */
static void pin_init(roar_tracer *t)
{
    const char *env = getenv("ROAR_PIN");
    if (env && strcmp(env, "0") == 0)
        return;
    int n = 1024;
    cpu_set_t *orig;
    for (;;) { /* the calling thread's mask, however many CPUs the kernel has */
        orig = CPU_ALLOC(n);
        if (!orig)
            return;
        if (sched_getaffinity(0, CPU_ALLOC_SIZE(n), orig) == 0)
            break;
        CPU_FREE(orig);
        if (errno != EINVAL || n >= (1 << 22))
            return;
        n *= 2;
    }
    size_t sz = CPU_ALLOC_SIZE(n);
    t->orig = orig;
    if (CPU_COUNT_S(sz, orig) < 2 || !(t->one = CPU_ALLOC(n)) || !(t->tmp = CPU_ALLOC(n)))
        return; /* one CPU: already co-located */
    t->mask_cpus = n;
    t->mask_size = sz;
    t->pin = PIN_ON;
    t->last_stop = mono_ns();
    pin_colocate(t, 0);
}

/* Syscall number and arguments at a seccomp stop. */
static int get_syscall(pid_t tid, long *nr, uint64_t a[6])
{
    struct __ptrace_syscall_info si;
    long r = ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof si, &si);
    if (r > 0 && si.op == PTRACE_SYSCALL_INFO_SECCOMP) {
        *nr = (long)si.seccomp.nr;
        memcpy(a, si.seccomp.args, 6 * sizeof(uint64_t));
        return 0;
    }
    if (r < 0 && errno == ESRCH)
        return -1;
#if defined(__x86_64__)
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0) {
        *nr = (long)regs.orig_rax;
        a[0] = regs.rdi;
        a[1] = regs.rsi;
        a[2] = regs.rdx;
        a[3] = regs.r10;
        a[4] = regs.r8;
        a[5] = regs.r9;
        return 0;
    }
#endif
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Events                                                                     */

static roar_event *emit(roar_tracer *t, int kind, int pid)
{
    if (!t->ev || t->nev >= t->evcap)
        return NULL;
    roar_event *e = &t->ev[t->nev++];
    e->kind = kind;
    e->pid = pid;
    e->arg = 0;
    e->flags = 0;
    e->held = 0;
    e->path = e->path2 = e->data = "";
    e->path_len = e->path2_len = e->data_len = 0;
    return e;
}

/* An event without arena strings (data must be static): appended, or deferred to
 * the next batch when this one is full. */
static void emit_simple(roar_tracer *t, int kind, int pid, long long arg, int flags,
                        const char *data)
{
    if (!t->ev)
        return;
    roar_event *e = emit(t, kind, pid);
    if (!e) {
        if (t->ndeferred >= DEFERRED_MAX)
            return;
        e = &t->deferred[t->ndeferred++];
        memset(e, 0, sizeof *e);
        e->kind = kind;
        e->pid = pid;
        e->path = e->path2 = "";
    }
    e->arg = arg;
    e->flags = flags;
    e->data = data ? data : "";
    e->data_len = data ? (unsigned int)strlen(data) : 0;
}

static void emit_untraced(roar_tracer *t, int pid, const char *reason)
{
    emit_simple(t, ROAR_EV_UNTRACED, pid, 0, 0, reason);
}

static void cont(pid_t tid, int sig)
{
    ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig);
}

/* One-path event.  Returns 1 if appended. */
static int ev_path1(roar_tracer *t, pid_t tid, int kind, int dirfd, uint64_t addr, int empty_ok,
                    long long arg, int flags, int held)
{
    if (!t->ev || resolve(t, tid, dirfd, addr, empty_ok, &t->p1) < 0)
        return 0;
    roar_event *e = emit(t, kind, tid);
    if (!e)
        return 0;
    e->arg = arg;
    e->flags = flags;
    e->held = held;
    e->path = arena_dup(t, t->p1.p, t->p1.len, &e->path_len);
    return 1;
}

static int ev_path2(roar_tracer *t, pid_t tid, int kind, int fd1, uint64_t a1, int empty_ok1,
                    int fd2, uint64_t a2, int flags, int held)
{
    if (!t->ev)
        return 0;
    if (kind == ROAR_EV_SYMLINK) { /* target text is stored as given */
        if (read_cstr(tid, a1, &t->raw, PATH_CAP) < 0 || sb_set(&t->p1, t->raw.p, t->raw.len) < 0)
            return 0;
    } else if (resolve(t, tid, fd1, a1, empty_ok1, &t->p1) < 0) {
        return 0;
    }
    if (resolve(t, tid, fd2, a2, 0, &t->p2) < 0)
        return 0;
    roar_event *e = emit(t, kind, tid);
    if (!e)
        return 0;
    e->flags = flags;
    e->held = held;
    e->path = arena_dup(t, t->p1.p, t->p1.len, &e->path_len);
    e->path2 = arena_dup(t, t->p2.p, t->p2.len, &e->path2_len);
    return 1;
}

static int write_intent(long long flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT));
}

/* An open event; a write-intent open is held (so the caller can hash the old content
 * first) only when there is old content: the path is a regular file now.  Otherwise
 * the tracee goes on and the event's flags say why: ROAR_OPEN_NEW (no such file: it is
 * created) or ROAR_OPEN_SPECIAL (a device, FIFO, socket or directory).  Returns 1 if
 * held.  A path left relative (longer than PATH_MAX) is held: the caller decides. */
static int ev_open(roar_tracer *t, pid_t tid, int dirfd, uint64_t addr, long long fl)
{
    if (!ev_path1(t, tid, ROAR_EV_OPEN, dirfd, addr, 0, fl, 0, 0) || !write_intent(fl))
        return 0;
    roar_event *e = &t->ev[t->nev - 1];
    struct stat st;
    if (e->path[0] == '/' && !t->hold_writes) {
        if (stat(e->path, &st) < 0) {
            if (errno == ENOENT) {
                e->flags = ROAR_OPEN_NEW;
                return 0;
            }
        } else if (!S_ISREG(st.st_mode)) {
            e->flags = ROAR_OPEN_SPECIAL;
            return 0;
        }
    }
    e->held = 1;
    return 1;
}

static void exec_pending(roar_tracer *t, pid_t tid, int dirfd, uint64_t path, uint64_t argv,
                         int empty_ok)
{
    task_t *e = task_find(t, tid);
    if (!e)
        return;
    task_clear_exec(e); /* forget an earlier attempt (failed PATH-search step) */
    if (resolve(t, tid, dirfd, path, empty_ok, &t->p1) < 0)
        return;
    read_argv(t, tid, argv, &t->argv);
    e->exec_path = malloc(t->p1.len + 1);
    e->exec_argv = malloc(t->argv.len + 1);
    if (!e->exec_path || !e->exec_argv) {
        task_clear_exec(e);
        return;
    }
    memcpy(e->exec_path, t->p1.p, t->p1.len + 1);
    memcpy(e->exec_argv, t->argv.p ? t->argv.p : "", t->argv.len);
    e->exec_path_len = (unsigned int)t->p1.len;
    e->exec_argv_len = (unsigned int)t->argv.len;
    e->has_exec = 1;
}

/* The socket type (SOCK_STREAM, SOCK_DGRAM, ...) of the tracee's fd, 0 if unknown:
 * the fd is borrowed with pidfd_getfd (we are its tracer, so we may). */
static int socket_type(roar_tracer *t, pid_t tid, int fd)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    task_t *e = task_find(t, tid);
    int pfd = (int)syscall(SYS_pidfd_open, e ? e->tgid : tid, 0);
    if (pfd < 0)
        return 0;
    int sfd = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    close(pfd);
    if (sfd < 0)
        return 0;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(sfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        type = 0;
    close(sfd);
    return type;
#else
    (void)t; (void)tid; (void)fd;
    return 0;
#endif
}

/* connect(fd, addr, len): an AF_INET/AF_INET6 peer is reported (raw sockaddr in data,
 * socket type in arg); local sockets (AF_UNIX, netlink) are not external sources. */
static void on_connect(roar_tracer *t, pid_t tid, int fd, uint64_t addr, uint64_t len)
{
    unsigned char sa[128];
    if (!t->ev || len < sizeof(unsigned short) || len > sizeof sa)
        return;
    if (read_mem(tid, addr, sa, (size_t)len) < 0)
        return;
    unsigned short family;
    memcpy(&family, sa, sizeof family);
    if (family != AF_INET && family != AF_INET6)
        return;
    roar_event *e = emit(t, ROAR_EV_CONNECT, tid);
    if (!e)
        return;
    e->arg = socket_type(t, tid, fd);
    e->data = arena_dup(t, (const char *)sa, (size_t)len, &e->data_len);
}

static void on_seccomp(roar_tracer *t, pid_t tid)
{
    long nr;
    uint64_t a[6];
    int held = 0;
    if (get_syscall(tid, &nr, a) < 0) {
        cont(tid, 0);
        return;
    }
    if (t->pin)
        pin_active(t, tid);
    switch (sc_kind_of(nr)) {
    case SC_OPEN:
        held = ev_open(t, tid, AT_FDCWD, a[0], (int)a[1]);
        break;
    case SC_CREAT:
        held = ev_open(t, tid, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC);
        break;
    case SC_OPENAT:
        held = ev_open(t, tid, (int)a[0], a[1], (int)a[2]);
        break;
    case SC_OPENAT2: {
        uint64_t fl;
        if (a[3] < sizeof fl || read_mem(tid, a[2], &fl, sizeof fl) < 0)
            break;
        held = ev_open(t, tid, (int)a[0], a[1], (long long)fl);
        break;
    }
    case SC_EXECVE:
        exec_pending(t, tid, AT_FDCWD, a[0], a[1], 0);
        break;
    case SC_EXECVEAT:
        exec_pending(t, tid, (int)a[0], a[1], a[2], ((int)a[4] & AT_EMPTY_PATH) != 0);
        break;
    case SC_RENAME:
        held = ev_path2(t, tid, ROAR_EV_RENAME, AT_FDCWD, a[0], 0, AT_FDCWD, a[1], 0, 1);
        break;
    case SC_RENAMEAT:
        held = ev_path2(t, tid, ROAR_EV_RENAME, (int)a[0], a[1], 0, (int)a[2], a[3], 0, 1);
        break;
    case SC_RENAMEAT2:
        held = ev_path2(t, tid, ROAR_EV_RENAME, (int)a[0], a[1], 0, (int)a[2], a[3], (int)a[4], 1);
        break;
    case SC_LINK:
        held = ev_path2(t, tid, ROAR_EV_LINK, AT_FDCWD, a[0], 0, AT_FDCWD, a[1], 0, 1);
        break;
    case SC_LINKAT:
        held = ev_path2(t, tid, ROAR_EV_LINK, (int)a[0], a[1], ((int)a[4] & AT_EMPTY_PATH) != 0,
                        (int)a[2], a[3], 0, 1);
        break;
    case SC_SYMLINK:
        held = ev_path2(t, tid, ROAR_EV_SYMLINK, AT_FDCWD, a[0], 0, AT_FDCWD, a[1], 0,
                        t->hold_writes) && t->hold_writes;
        break;
    case SC_SYMLINKAT:
        held = ev_path2(t, tid, ROAR_EV_SYMLINK, AT_FDCWD, a[0], 0, (int)a[1], a[2], 0,
                        t->hold_writes) && t->hold_writes;
        break;
    case SC_UNLINK:
        held = ev_path1(t, tid, ROAR_EV_UNLINK, AT_FDCWD, a[0], 0, 0, 0, 1);
        break;
    case SC_UNLINKAT:
        held = ev_path1(t, tid, ROAR_EV_UNLINK, (int)a[0], a[1], 0, 0,
                        ((int)a[2] & AT_REMOVEDIR) ? 1 : 0, 1);
        break;
    case SC_TRUNCATE:
        held = ev_path1(t, tid, ROAR_EV_TRUNCATE, AT_FDCWD, a[0], 0, 0, 0, 1);
        break;
    case SC_IO_URING:
        emit_untraced(t, tid, "io_uring");
        break;
    case SC_PTRACE:
        emit_untraced(t, tid, "nested ptrace");
        break;
    case SC_MEMFD:
        emit_untraced(t, tid, "memfd");
        break;
    case SC_CONNECT:
        on_connect(t, tid, (int)a[0], a[1], a[2]);
        break;
    case SC_SENDTO:
        on_connect(t, tid, (int)a[0], a[4], a[5]);
        break;
    case SC_AFFINITY: /* before the call runs: it must see (or replace) the real mask */
        if (t->pin)
            pin_off(t);
        break;
    default:
        emit_untraced(t, tid, "unexpected seccomp stop");
        break;
    }
    if (held) {
        t->held = tid;
        t->stop_batch = 1;
        return;
    }
    cont(tid, 0);
}

/* If pid was reaped while unknown, forget it and return 1 with its status. */
static int reaped_take(roar_tracer *t, pid_t pid, int *status)
{
    for (int i = 0; i < REAPED_RING; i++)
        if (t->reaped[i] == pid) {
            t->reaped[i] = 0;
            if (status)
                *status = t->reaped_status[i];
            return 1;
        }
    return 0;
}

static void on_fork(roar_tracer *t, pid_t tid, int event)
{
    unsigned long msg = 0;
    int thread = 0;
    if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg) < 0) {
        cont(tid, 0);
        return;
    }
    pid_t child = (pid_t)msg;
    if (event == PTRACE_EVENT_CLONE) {
        int known = 0;
#if defined(__x86_64__)
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0) {
            uint64_t fl = 0;
#ifdef SYS_clone3
            if ((long)regs.orig_rax == SYS_clone3) {
                if (read_mem(tid, regs.rdi, &fl, sizeof fl) == 0)
                    known = 1;
            } else
#endif
            if ((long)regs.orig_rax == SYS_clone) {
                fl = regs.rdi;
                known = 1;
            }
            thread = (fl & CLONE_THREAD) != 0;
        }
#endif
        if (!known) {
            int a = proc_tgid(child), b = proc_tgid(tid);
            thread = a > 0 && a == b;
        }
    }
    task_t *p = task_find(t, tid);
    int ptgid = p ? p->tgid : tid;
    int dead_status;
    int dead = reaped_take(t, child, &dead_status);
    if (!dead) {
        int was_known = task_find(t, child) != NULL;
        task_t *c = task_add(t, child, thread ? ptgid : child);
        if (c) {
            c->tgid = thread ? ptgid : child;
            c->parent = thread ? 0 : ptgid;
        }
        if ((t->pin || t->stale) && (thread || !was_known))
            pin_new_task(t, child, thread);
    } else if (t->pin && thread) {
        pin_off(t);
    }
    emit_simple(t, ROAR_EV_FORK, tid, child, thread, NULL);
    if (dead) /* it died before we heard of it: report its exit after the fork */
        emit_simple(t, ROAR_EV_EXIT, child, dead_status, thread, NULL);
    cont(tid, 0);
}

static void on_exec(roar_tracer *t, pid_t pid)
{
    unsigned long former = (unsigned long)pid;
    ptrace(PTRACE_GETEVENTMSG, pid, 0, &former);
    char *path = NULL, *argv = NULL;
    unsigned int path_len = 0, argv_len = 0;
    task_t *src = task_find(t, (int)former); /* the task that called execve */
    if (src && src->has_exec) {
        path = src->exec_path;
        argv = src->exec_argv;
        path_len = src->exec_path_len;
        argv_len = src->exec_argv_len;
        src->exec_path = src->exec_argv = NULL;
        src->has_exec = 0;
    }
    if (t->pin)
        pin_active(t, (pid_t)former);
    if ((pid_t)former != pid) {
        task_del(t, (int)former); /* the execing thread took over the leader's tid */
        if (t->pin)
            pin_gone(t, (pid_t)former);
    }
    task_t *pt = task_add(t, pid, pid);
    if (pt) {
        pt->tgid = pid;
        task_clear_exec(pt);
    }
    if (t->ev) {
        roar_event *e = emit(t, ROAR_EV_EXEC, pid);
        if (e) {
            char exe[PATH_MAX * 2];
            ssize_t xl = proc_link(pid, "exe", exe, sizeof exe);
            if (xl >= 0)
                e->path2 = arena_dup(t, exe, (size_t)xl, &e->path2_len);
            /* setuid/setgid: no_new_privs made it run without that privilege */
            char lp[64];
            struct stat sb;
            snprintf(lp, sizeof lp, "/proc/%d/exe", (int)pid);
            if (stat(lp, &sb) == 0)
                e->flags = ((sb.st_mode & S_ISUID) ? 1 : 0) |
                           ((sb.st_mode & S_ISGID) && (sb.st_mode & S_IXGRP) ? 2 : 0);
            if (path)
                e->path = arena_dup(t, path, path_len, &e->path_len);
            else if (xl >= 0)
                e->path = arena_dup(t, exe, (size_t)xl, &e->path_len);
            if (argv) {
                e->data = arena_dup(t, argv, argv_len, &e->data_len);
            } else {
                read_cmdline(pid, &t->argv);
                e->data = arena_dup(t, t->argv.p ? t->argv.p : "", t->argv.len, &e->data_len);
            }
        }
        /* A foreign-arch program (e.g. 32-bit on x86_64) bypasses the filter. */
        struct __ptrace_syscall_info si;
        if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof si, &si) > 0 &&
            si.arch != ROAR_AUDIT_ARCH)
            emit_untraced(t, pid, "foreign-arch process");
    }
    free(path);
    free(argv);
    cont(pid, 0);
}

static void on_exit_status(roar_tracer *t, pid_t pid, int st)
{
    if (t->last_ru.ru_maxrss > t->max_rss_kb)
        t->max_rss_kb = t->last_ru.ru_maxrss;
    task_t *e = task_find(t, pid);
    if (!e) {
        /* Not (yet) known: a new tracee killed before its parent's fork event was
         * collected (its EXIT then follows that FORK), or not ours: no event. */
        unsigned int i = t->reaped_pos++ % REAPED_RING;
        t->reaped[i] = pid;
        t->reaped_status[i] = st;
        return;
    }
    int thread = e->tgid != pid;
    if (!thread && pid != t->root && e->parent && !task_find(t, e->parent)) {
        /* its parent is gone: no tracee waited for it, so the root's rusage lacks it */
        timeradd(&t->orphan_utime, &t->last_ru.ru_utime, &t->orphan_utime);
        timeradd(&t->orphan_stime, &t->last_ru.ru_stime, &t->orphan_stime);
    }
    task_del(t, pid);
    if (t->pin)
        pin_gone(t, pid);
    if (pid == t->root) {
        t->root_status = st;
        t->root_ru = t->last_ru;
        if (g_fwd_owner == t)
            g_fwd_pid = 0; /* root reaped: its pid may be reused, stop forwarding */
    }
    emit_simple(t, ROAR_EV_EXIT, pid, st, thread, NULL);
}

static void dispatch_status(roar_tracer *t, pid_t pid, int st)
{
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
        on_exit_status(t, pid, st);
        return;
    }
    if (!WIFSTOPPED(st))
        return;
    if (!task_find(t, pid)) {
        /* Only tracees report ptrace stops: an auto-attached child whose
         * parent's fork event we have not collected yet. */
        reaped_take(t, pid, NULL); /* pid reuse: forget an old unknown exit */
        task_add(t, pid, pid);
        if (t->pin || t->stale)
            pin_new_task(t, pid, -1);
    }
    int sig = WSTOPSIG(st);
    int event = (int)((unsigned int)st >> 16);
    switch (event) {
    case 0: /* signal-delivery-stop: re-inject */
        cont(pid, sig);
        break;
    case PTRACE_EVENT_SECCOMP:
        on_seccomp(t, pid);
        break;
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
        on_fork(t, pid, event);
        break;
    case PTRACE_EVENT_EXEC:
        on_exec(t, pid);
        break;
    case PTRACE_EVENT_STOP:
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
            ptrace(PTRACE_LISTEN, pid, 0, 0); /* group-stop: keep job control working */
        else
            cont(pid, 0); /* initial stop of a new tracee, or end of a group-stop */
        break;
    default:
        cont(pid, 0);
        break;
    }
}

static void handle_status(roar_tracer *t, pid_t pid, int st)
{
    if (t->pin)
        pin_tick(t);
    dispatch_status(t, pid, st);
    if (pid == t->stale) /* its stop since the unpin is handled: any child it forked */
        t->stale = 0;    /* before is known now */
}

/* ------------------------------------------------------------------------- */
/* Seccomp filter                                                             */

static void build_filter(roar_tracer *t, int with_affinity)
{
    struct sock_filter *f = t->filter;
    int n = 0;
    int x32 = ROAR_X32_CHECK;
    int nr = NSYSCALLS + (with_affinity ? NAFFINITY : 0);
    long nrs[NSYSCALLS + NAFFINITY];
    for (int i = 0; i < NSYSCALLS; i++)
        nrs[i] = SYSCALLS[i].nr;
    for (int i = NSYSCALLS; i < nr; i++)
        nrs[i] = AFFINITY_SYSCALLS[i - NSYSCALLS];
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    int sb = SENDTO_BLOCK;
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ROAR_AUDIT_ARCH, 0,
                                          (unsigned char)(1 + x32 + sb + nr));
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
#if ROAR_X32_CHECK
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT,
                                          (unsigned char)(sb + nr), 0);
#endif
#ifdef SYS_sendto
    /* sendto with a destination (args[4], both halves checked) -> TRACE; without -> ALLOW;
     * any other call skips the block with A still holding its number. */
    {
        unsigned int lo = (unsigned int)offsetof(struct seccomp_data, args[4]);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)SYS_sendto,
                                              0, 4);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, lo);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0,
                                              (unsigned char)(nr + 3));
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, lo + 4);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, (unsigned char)nr,
                                              (unsigned char)(nr + 1));
    }
#endif
    for (int i = 0; i < nr; i++)
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nrs[i],
                                              (unsigned char)(nr - i), 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    t->filter_len = (unsigned short)n;
}

/* ------------------------------------------------------------------------- */
/* Public API                                                                 */

static void free_tracer(roar_tracer *t)
{
    if (!t)
        return;
    t->pinned = 0; /* any tracee left is dead by now */
    restore_interrupts(t);
    if (t->orig)
        pin_release(t); /* the tracer thread gets its original mask back */
    CPU_FREE(t->orig);
    CPU_FREE(t->one);
    CPU_FREE(t->tmp);
    if (t->tasks)
        for (unsigned int i = 0; i < t->tcap; i++)
            task_clear_exec(&t->tasks[i]);
    free(t->tasks);
    for (ablock *b = t->arena_head; b;) {
        ablock *nx = b->next;
        free(b);
        b = nx;
    }
    free(t->raw.p);
    free(t->p1.p);
    free(t->p2.p);
    free(t->argv.p);
    free(t);
}

static void child_fail(int fd, int e)
{
    ssize_t r;
    do {
        r = write(fd, &e, sizeof e);
    } while (r < 0 && errno == EINTR);
    _exit(127);
}

static pid_t wait_retry(pid_t pid, int *st, int options)
{
    pid_t r;
    do {
        r = waitpid(pid, st, options);
    } while (r < 0 && errno == EINTR);
    return r;
}

roar_tracer *roar_start(const char *path, char *const argv[], char *const envp[],
                        const char *cwd, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (!path || !argv) {
        *err = EINVAL;
        return NULL;
    }
    if (!page_size) {
        page_size = sysconf(_SC_PAGESIZE);
        if (page_size <= 0)
            page_size = 4096;
    }
    roar_tracer *t = calloc(1, sizeof *t);
    if (!t) {
        *err = ENOMEM;
        return NULL;
    }
    t->root_status = -1;
    t->claim_fd = -1;
    t->tcap = 64;
    t->tasks = calloc(t->tcap, sizeof *t->tasks);
    if (!t->tasks) {
        free_tracer(t);
        *err = ENOMEM;
        return NULL;
    }
    t->tracer_tid = (pid_t)syscall(SYS_gettid);
    pin_init(t); /* before the fork: the child inherits the tracer's pin */
    build_filter(t, t->pin != PIN_OFF);
    struct sock_fprog prog = {.len = t->filter_len, .filter = t->filter};

    int syncp[2], errp[2];
    if (pipe2(syncp, O_CLOEXEC) < 0) {
        *err = errno;
        free_tracer(t);
        return NULL;
    }
    if (pipe2(errp, O_CLOEXEC) < 0) {
        *err = errno;
        close(syncp[0]);
        close(syncp[1]);
        free_tracer(t);
        return NULL;
    }

    ignore_interrupts(t); /* the child sets them back to the default before execve */
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        close(syncp[0]);
        close(syncp[1]);
        close(errp[0]);
        close(errp[1]);
        free_tracer(t);
        return NULL;
    }
    if (pid == 0) {
        /* child: async-signal-safe calls only */
        static const int sigs[] = {SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGHUP, SIGTSTP,
                                   SIGTTIN, SIGTTOU, SIGCHLD, SIGXFSZ, SIGUSR1, SIGUSR2};
        close(syncp[1]);
        close(errp[0]);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            sigaction(sigs[i], &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (cwd && chdir(cwd) < 0)
            child_fail(errp[1], errno);
        char c;
        ssize_t r;
        do {
            r = read(syncp[0], &c, 1);
        } while (r < 0 && errno == EINTR);
        if (r != 1)
            _exit(127); /* the parent could not attach */
        close(syncp[0]);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            child_fail(errp[1], errno);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
            child_fail(errp[1], errno);
        execve(path, argv, envp ? envp : environ);
        child_fail(errp[1], errno);
    }

    close(syncp[0]);
    close(errp[1]);
    t->root = pid;
    task_add(t, pid, pid);
    if (t->tracer_pinned)
        t->pinned = pid; /* it inherited the pin */
    long opts = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
    int st;
    if (ptrace(PTRACE_SEIZE, pid, 0, (void *)opts) < 0) {
        *err = errno;
        kill(pid, SIGKILL);
        close(syncp[1]);
        close(errp[0]);
        wait_retry(pid, &st, __WALL);
        free_tracer(t);
        return NULL;
    }
    ssize_t w;
    do {
        w = write(syncp[1], "x", 1);
    } while (w < 0 && errno == EINTR);
    close(syncp[1]);

    /* Run the child up to its successful execve (PTRACE_EVENT_EXEC), which is
     * left for the first roar_next, or to its death (failed chdir/execve). */
    for (;;) {
        pid_t r = wait_retry(pid, &st, __WALL);
        if (r < 0) {
            *err = errno;
            break;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            int e = 0;
            ssize_t n;
            do {
                n = read(errp[0], &e, sizeof e);
            } while (n < 0 && errno == EINTR);
            *err = (n == (ssize_t)sizeof e && e > 0) ? e : ECHILD;
            break;
        }
        if (WIFSTOPPED(st) && ((unsigned int)st >> 16) == PTRACE_EVENT_EXEC) {
            t->saved_pid = pid;
            t->saved_status = st;
            close(errp[0]);
            return t;
        }
        handle_status(t, pid, st); /* execve's seccomp stop, signals: no events */
    }
    close(errp[0]);
    free_tracer(t);
    return NULL;
}

int roar_root_pid(roar_tracer *t)
{
    return t ? (int)t->root : -1;
}

static void forward_handler(int sig)
{
    int saved = errno;
    pid_t p = (pid_t)g_fwd_pid;
    if (p > 0)
        kill(p, sig);
    errno = saved;
}

int roar_forward_signals(roar_tracer *t)
{
    if (!t)
        return -EINVAL;
    if (g_fwd_owner && g_fwd_owner != t)
        return -EBUSY;
    if (t->root_status != -1)
        return -ESRCH;
    g_fwd_pid = t->root;
    if (g_fwd_owner == t)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 4; i++) {
        if (sigaction(g_fwd_sigs[i], &sa, &g_old_actions[i]) < 0) {
            int e = errno;
            for (int j = 0; j < i; j++)
                sigaction(g_fwd_sigs[j], &g_old_actions[j], NULL);
            g_fwd_pid = 0;
            return -e;
        }
    }
    g_fwd_owner = t;
    return 0;
}

int roar_next(roar_tracer *t, roar_event *events, int cap)
{
    if (!t || !events || cap <= 0)
        return -EINVAL;
    if ((pid_t)syscall(SYS_gettid) != t->tracer_tid)
        return -EPERM; /* not the thread that called roar_start */
    if (t->held) {
        if (t->pin) /* the time it was held (hashing) is not the tracee's */
            t->last_stop = mono_ns();
        cont(t->held, 0);
        t->held = 0;
    }
    arena_reset(t);
    t->ev = events;
    t->evcap = cap;
    t->nev = 0;
    t->stop_batch = 0;
    if (t->ndeferred) {
        int k = t->ndeferred < cap ? t->ndeferred : cap;
        memcpy(events, t->deferred, (size_t)k * sizeof *events);
        memmove(t->deferred, t->deferred + k, (size_t)(t->ndeferred - k) * sizeof *events);
        t->ndeferred -= k;
        t->nev = k;
    }
    while (t->nev < cap && !t->stop_batch) {
        pid_t pid;
        int st;
        if (t->saved_pid) {
            pid = t->saved_pid;
            st = t->saved_status;
            t->saved_pid = 0;
            memset(&t->last_ru, 0, sizeof t->last_ru);
        } else {
            if (t->ntasks == 0)
                break;
            /* Block until the batch is full, an event is held, or every tracee is gone:
             * returning to Python after each event costs a round trip per syscall stop,
             * and nothing on the Python side needs events sooner. */
            pid = wait4(-1, &st, __WALL, &t->last_ru);
            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == ECHILD) { /* nothing left to wait for */
                    for (unsigned int i = 0; i < t->tcap; i++)
                        if (t->tasks[i].tid)
                            task_clear_exec(&t->tasks[i]);
                    memset(t->tasks, 0, t->tcap * sizeof *t->tasks);
                    t->ntasks = 0;
                    t->pinned = 0;
                    if (t->pin)
                        pin_release(t);
                    break;
                }
                int e = errno;
                int n = t->nev;
                t->ev = NULL;
                return n ? n : -e;
            }
        }
        handle_status(t, pid, st);
    }
    int n = t->nev;
    t->ev = NULL;
    return n;
}

int roar_hold_writes(roar_tracer *t, int on)
{
    if (!t)
        return -EINVAL;
    t->hold_writes = on != 0;
    return 0;
}

int roar_interrupts(void)
{
    return (int)g_interrupts;
}

int roar_exit_status(roar_tracer *t)
{
    return t ? t->root_status : -1;
}

int roar_usage(roar_tracer *t, long long *user_us, long long *sys_us, long long *max_rss_kb)
{
    if (!t || !user_us || !sys_us || !max_rss_kb)
        return -EINVAL;
    const struct rusage *r = &t->root_ru;
    struct timeval user, sys;
    timeradd(&r->ru_utime, &t->orphan_utime, &user);
    timeradd(&r->ru_stime, &t->orphan_stime, &sys);
    *user_us = (long long)user.tv_sec * 1000000 + user.tv_usec;
    *sys_us = (long long)sys.tv_sec * 1000000 + sys.tv_usec;
    *max_rss_kb = t->max_rss_kb > r->ru_maxrss ? t->max_rss_kb : r->ru_maxrss;
    return t->root_status == -1 ? -ECHILD : 0;
}

void roar_free(roar_tracer *t)
{
    if (!t)
        return;
    if (g_fwd_owner == t) {
        g_fwd_pid = 0;
        for (int i = 0; i < 4; i++)
            sigaction(g_fwd_sigs[i], &g_old_actions[i], NULL);
        g_fwd_owner = NULL;
    }
    if (t->ntasks > 0) {
        /* Abandoned mid-run: kill every tracee (they cannot run untraced: their
         * filtered syscalls would fail with ENOSYS) and reap them. */
        for (unsigned int i = 0; i < t->tcap; i++)
            if (t->tasks[i].tid)
                kill(t->tasks[i].tid, SIGKILL);
        while (t->ntasks > 0) {
            int st;
            struct rusage ru;
            pid_t pid;
            do {
                pid = wait4(-1, &st, __WALL, &ru);
            } while (pid < 0 && errno == EINTR);
            if (pid < 0)
                break;
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                if (pid == t->root) {
                    t->root_status = st;
                    t->root_ru = ru;
                }
                task_del(t, pid);
            } else if (WIFSTOPPED(st)) {
                if (!task_find(t, pid)) { /* a new child we had not seen yet */
                    task_add(t, pid, pid);
                    kill(pid, SIGKILL);
                }
                cont(pid, 0);
            }
        }
    }
    free_tracer(t);
}
