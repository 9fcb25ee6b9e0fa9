/* roar ptrace tracer: C API.
 *
 * This file is also fed to cffi's cdef by native/build_tracer.py after the lines
 * starting with '#' are dropped, so it must contain only what cffi can parse.
 */
#ifndef ROAR_TRACER_H
#define ROAR_TRACER_H

typedef struct roar_tracer roar_tracer;

enum {
    ROAR_EV_EXEC = 1,
    ROAR_EV_FORK = 2,
    ROAR_EV_EXIT = 3,
    ROAR_EV_OPEN = 4,
    ROAR_EV_RENAME = 5,
    ROAR_EV_UNLINK = 6,
    ROAR_EV_TRUNCATE = 7,
    ROAR_EV_LINK = 8,
    ROAR_EV_SYMLINK = 9,
    ROAR_EV_UNTRACED = 10,
    ROAR_EV_CONNECT = 11
};

enum { /* OPEN flags: why a write-intent open was not held */
    ROAR_OPEN_NEW = 1,    /* the path did not exist: the open creates it */
    ROAR_OPEN_SPECIAL = 2 /* not a regular file (device, FIFO, socket, directory) */
};

typedef struct {
    int kind;
    int pid;          /* tid of the task that made the call (tgid for EXEC, reaped tid for EXIT) */
    long long arg;    /* OPEN: open flags; FORK: new tid; EXIT: raw wait status;
                         CONNECT: the socket's SO_TYPE (0: unknown); others 0 */
    int flags;        /* FORK: 1 if thread; RENAME: renameat2 flags; UNLINK: 1 if AT_REMOVEDIR;
                         EXIT: 1 if the task was a non-leader thread;
                         EXEC: 1 if the executable is setuid, 2 if setgid (both: 3);
                         OPEN: ROAR_OPEN_NEW or ROAR_OPEN_SPECIAL when not held, else 0 */
    int held;         /* 1: the tracee is stopped until the next roar_next call (write-intent
                         opens of an existing regular file, rename, link, unlink, truncate) */
    unsigned int path_len, path2_len, data_len;
    const char *path;   /* OPEN/UNLINK/TRUNCATE: the file; RENAME/LINK: old path;
                           SYMLINK: link target text as given; EXEC: filename */
    const char *path2;  /* RENAME/LINK: new path; SYMLINK: the new link's path; EXEC: /proc/PID/exe */
    const char *data;   /* EXEC: argv, each NUL-terminated; UNTRACED: reason;
                           CONNECT: the raw AF_INET/AF_INET6 sockaddr given to connect() */
} roar_event;

/* roar_start forks and execs path under the tracer; NULL with *err set on failure.
 *
 * CPU co-location.  A ptrace stop costs about twice as much when the tracer and
 * the tracee wake each other across CPUs, so while at most one traced task does the
 * work, roar_start's calling thread (the tracer) and that task are pinned to one
 * CPU of the caller's original affinity mask (sched_getaffinity at roar_start):
 *  - the CPU the tracer runs on (sched_getcpu) if it is in the mask, else the next
 *    one in it; a CPU another roar tracer on this machine has pinned is skipped
 *    (abstract unix socket "roar-pin-cpu-N"); none free or the mask has one CPU:
 *    no pin;
 *  - a lone process that forks: its child keeps the pin, the parent gets the
 *    original mask back (a shell or subprocess.run waiting for one command); when
 *    one of the two exits the other is pinned again;
 *  - a thread, a third live task, or a traced syscall by the unpinned parent while
 *    its child lives (parallel work): every live tracee and the tracer get the
 *    original mask back (exactly it), and nothing is pinned again in that run;
 *  - sched_getaffinity/sched_setaffinity by a tracee (trapped only while pinning
 *    is on): the same, before the call runs, so the program sees and replaces its
 *    real mask (thread pools sized from the affinity are not shrunk);
 *  - a second without a stop: unpin (nothing to gain; a pinned CPU-bound job could
 *    not be balanced away from another CPU hog); 64 stops less than 2 ms apart
 *    with one live task: pin again.
 * Set ROAR_PIN=0 in the caller's environment (read with getenv by roar_start) to
 * disable it.  The tracer's original mask is back once every tracee is gone, and
 * at roar_free.
 *
 * SIGINT and SIGQUIT only counted (roar_interrupts) in the calling process from roar_start
 * to roar_free (the command gets them from the terminal; the tracer must outlive it). */
roar_tracer *roar_start(const char *path, char *const argv[], char *const envp[],
                        const char *cwd, int *err);
int roar_root_pid(roar_tracer *t);
int roar_forward_signals(roar_tracer *t);
int roar_next(roar_tracer *t, roar_event *events, int cap);
int roar_exit_status(roar_tracer *t);
/* What the command used: user and system CPU microseconds of the root process and every
 * descendant it (or a descendant) waited for, as wait4 reports them when the root is reaped,
 * plus those of each process that outlived its parent (an orphan: a daemon, a `cmd &` left
 * behind; its own wait4 rusage, with what it waited for), and the largest max RSS (KiB) any
 * reaped tracee had.  -ECHILD until the root is reaped. */
int roar_usage(roar_tracer *t, long long *user_us, long long *sys_us, long long *max_rss_kb);
/* While on, every write-intent open (flags 0) and every symlink creation is held too, not
 * only what changes an existing file: the caller can make the command wait before it
 * changes anything, e.g. until a snapshot of its tree is taken. */
int roar_hold_writes(roar_tracer *t, int on);
/* SIGINT/SIGQUIT received by this process since it loaded (counted while a tracer lives). */
int roar_interrupts(void);
void roar_free(roar_tracer *t);

#endif
