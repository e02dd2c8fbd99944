/* The job starter: the job's process from the launcher's spawn to the exec of its command.

   What launcher.py's child does after a fork (Launcher.prepare and Launcher.child), done by a
   small program the launcher spawns instead (posix_spawn: the child borrows the launcher's memory
   until this program runs, so nothing of the launcher's heap is copied, faulted in or torn
   down for each job). Same steps, same order, same messages; see protocol.py for what
   "started" means and launcher.py for why each step is where it is.

   The worker builds it (starter.py) with the machine's C compiler; without one, the launcher
   forks as before. It runs as root until it drops privileges: it reads nothing from its
   environment (it is spawned with none) and trusts its arguments, which only the launcher gives:

     starter STATUS_FD GO_FD REQUEST_FD     (or `starter --check`: see check())

   three descriptors it inherits: the job's status file, the read end of its go pipe, and a
   file that holds the request, NUL-separated fields:

     STATUS_PATH CGROUP NPROC UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE ARGC ARGV... NAME=VALUE...

   as protocol.py has them, NAME=VALUE the job's environment as execve takes it. 0 and 1 are
   /dev/null, 2 the launcher's log.

   It uses no C library: system calls are made directly (the `sys_` functions below). A C
   library's start-up asks the processor what it is (the CPUID instruction, dozens of times, to
   pick its string functions and learn its caches), and in a virtual machine each such question
   is a trip to the hypervisor: measured on a 2-core virtual machine, a static program that does
   nothing cost 0.36 ms of CPU to run with glibc and 0.09 ms without, for every job. The kernel's
   own headers give the numbers and the structures; x86-64 and AArch64 are supported (elsewhere
   the build fails, and the launcher forks). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/stat.h>

#define FIXED 12 /* fields before ARGV */
#define NGROUPS_MAX 65536 /* the kernel's */
#define INT_MAX 0x7fffffffLL
#define ID_MAX 0xfffffffeLL /* (uid_t)-1 means "unchanged" to the kernel */
#define RLIMIT_NPROC 6
#define SIGPIPE 13
#define SIG_SETMASK 2
#define F_SETFD 2
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

/* ---- system calls: the result, or -errno ---- */

#if defined(__x86_64__)
static long syscall6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp, %rbp\n mov %rsp, %rdi\n and $-16, %rsp\n call start\n hlt\n");
#elif defined(__aarch64__)
static long syscall6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x30, #0\n mov x0, sp\n bl start\n");
#else
#error "the job starter supports x86-64 and AArch64; the launcher forks elsewhere"
#endif

#define SYS(n, a, b, c, d) syscall6(__NR_##n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static __attribute__((noreturn)) void sys_exit(int code) {
    for (;;)
        SYS(exit_group, code, 0, 0, 0);
}

static long sys_write_all(int fd, const char *data, long size) {
    for (long done = 0; done < size;) {
        long n = SYS(write, fd, data + done, size - done, 0);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? n : -EIO;
        done += n;
    }
    return size;
}

static int sys_open(const char *path, int flags, int mode) {
    return (int)SYS(openat, AT_FDCWD, path, flags, mode);
}

static int sys_fstat(int fd, struct statx *st) {
    return (int)syscall6(__NR_statx, fd, (long)"", AT_EMPTY_PATH, STATX_TYPE | STATX_INO | STATX_SIZE | STATX_UID,
                         (long)st, 0);
}

static int sys_lstat(const char *path, struct statx *st) {
    return (int)syscall6(__NR_statx, AT_FDCWD, (long)path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, (long)st, 0);
}

/* Memory that lives until the exec: nothing is ever freed. */
static void *sys_alloc(unsigned long size) {
    long p = syscall6(__NR_mmap, 0, (long)(size ? size : 1), 3 /* read, write */, 0x22 /* private, anonymous */, -1, 0);
    return p < 0 && p > -4096 ? NULL : (void *)p;
}

/* ---- strings ---- */

/* A compiler may call these four for copies and comparisons it makes itself, whatever the code
   says; there is no C library to provide them. It may also turn a plain copy loop into a call
   of memcpy: the empty asm keeps these loops loops. */
void *memcpy(void *to, const void *from, size_t n) {
    char *t = to;
    const char *f = from;
    for (size_t i = 0; i < n; i++) {
        t[i] = f[i];
        __asm__ volatile("" ::: "memory");
    }
    return to;
}

void *memset(void *to, int c, size_t n) {
    char *t = to;
    for (size_t i = 0; i < n; i++) {
        t[i] = (char)c;
        __asm__ volatile("" ::: "memory");
    }
    return to;
}

void *memmove(void *to, const void *from, size_t n) {
    char *t = to;
    const char *f = from;
    if (t < f)
        return memcpy(to, from, n);
    for (size_t i = n; i > 0; i--) {
        t[i - 1] = f[i - 1];
        __asm__ volatile("" ::: "memory");
    }
    return to;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static int starts_with(const char *s, const char *prefix) {
    while (*prefix && *s == *prefix)
        s++, prefix++;
    return !*prefix;
}

static char *decimal(char *buffer, long long value) { /* buffer of 24 */
    char digits[24];
    int n = 0;
    unsigned long long v = value < 0 ? -(unsigned long long)value : (unsigned long long)value;
    do
        digits[n++] = (char)('0' + v % 10);
    while (v /= 10);
    char *p = buffer;
    if (value < 0)
        *p++ = '-';
    while (n)
        *p++ = digits[--n];
    *p = '\0';
    return buffer;
}

/* The C library's wording, so that the job's messages read as the fork's (Python's
   os.strerror is the C library's). */
static const char *describe(int error) {
    switch (error) {
    case EPERM: return "Operation not permitted";
    case ENOENT: return "No such file or directory";
    case ESRCH: return "No such process";
    case EINTR: return "Interrupted system call";
    case EIO: return "Input/output error";
    case ENXIO: return "No such device or address";
    case E2BIG: return "Argument list too long";
    case ENOEXEC: return "Exec format error";
    case EBADF: return "Bad file descriptor";
    case EAGAIN: return "Resource temporarily unavailable";
    case ENOMEM: return "Cannot allocate memory";
    case EACCES: return "Permission denied";
    case EFAULT: return "Bad address";
    case EBUSY: return "Device or resource busy";
    case EEXIST: return "File exists";
    case ENODEV: return "No such device";
    case ENOTDIR: return "Not a directory";
    case EISDIR: return "Is a directory";
    case EINVAL: return "Invalid argument";
    case ENFILE: return "Too many open files in system";
    case EMFILE: return "Too many open files";
    case ETXTBSY: return "Text file busy";
    case EFBIG: return "File too large";
    case ENOSPC: return "No space left on device";
    case EROFS: return "Read-only file system";
    case ENAMETOOLONG: return "File name too long";
    case ENOSYS: return "Function not implemented";
    case ELOOP: return "Too many levels of symbolic links";
    case EOVERFLOW: return "Value too large for defined data type";
    case ELIBBAD: return "Accessing a corrupted shared library";
    case EOPNOTSUPP: return "Operation not supported";
    case ESTALE: return "Stale file handle";
    case EDQUOT: return "Disk quota exceeded";
    }
    return NULL;
}

/* A message of pieces, `first` and those after it up to a NULL, into `out` (cut to fit `room`
   with its NUL); its length. */
static long vcompose(char *out, long room, const char *first, va_list more) {
    long n = 0;
    for (const char *piece = first; piece != NULL; piece = va_arg(more, const char *))
        for (; *piece && n < room - 1; piece++)
            out[n++] = *piece;
    out[n] = '\0';
    return n;
}

static long compose(char *out, long room, const char *first, ...) {
    va_list more;
    va_start(more, first);
    long n = vcompose(out, room, first, more);
    va_end(more);
    return n;
}

static char unknown[40];

static const char *error_text(long error) {
    const char *text = describe((int)error);
    if (text)
        return text;
    char number[24];
    compose(unknown, sizeof unknown, "Unknown error ", decimal(number, error), NULL);
    return unknown;
}

static int status_fd = -1;

/* The setup failed: an "error" line in the status file (protocol.error_line), and no job. The
   message is its pieces, up to a NULL. */
static __attribute__((noreturn)) void fail(const char *first, ...) {
    char line[4104] = "error ";
    va_list more;
    va_start(more, first);
    long n = 6 + vcompose(line + 6, 4096, first, more);
    va_end(more);
    for (long i = 6; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    sys_write_all(status_fd, line, n); /* if it fails, nothing more can say so */
    sys_exit(1);
}

static int parse_int(const char *text, long long max, long long *out) {
    if (!*text)
        return -1;
    long long value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
        if (value > max)
            return -1;
    }
    *out = value;
    return 0;
}

/* The status file under the job's name is this process's, and starts with its "start" line: a
   launcher that died before the go may have written it all the same (launcher.py). */
static int started_all_the_same(const char *status_path) {
    struct statx mine, named;
    if (sys_fstat(status_fd, &mine) != 0 || sys_lstat(status_path, &named) != 0)
        return 0;
    if (mine.stx_dev_major != named.stx_dev_major || mine.stx_dev_minor != named.stx_dev_minor ||
        mine.stx_ino != named.stx_ino)
        return 0;
    char path[64] = "/proc/self/fd/", head[64], want[64] = "start ";
    decimal(path + length(path), status_fd);
    int fd = sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    long n = SYS(read, fd, head, sizeof head, 0);
    SYS(close, fd, 0, 0, 0);
    decimal(want + length(want), SYS(getpid, 0, 0, 0, 0));
    size_t w = length(want);
    want[w++] = ' ';
    if (n < (long)w)
        return 0;
    for (size_t i = 0; i < w; i++)
        if (head[i] != want[i])
            return 0;
    return 1;
}

static void join_cgroups(char *files) {
    char pid[24];
    decimal(pid, SYS(getpid, 0, 0, 0, 0));
    long len = (long)length(pid);
    for (char *path = files, *next; path; path = next) {
        for (next = path; *next && *next != ':'; next++)
            ;
        if (*next)
            *next++ = '\0';
        else
            next = NULL;
        /* O_CREAT: see launcher.py's join_cgroups. */
        long fd = sys_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        long wrote = fd < 0 ? fd : SYS(write, fd, pid, len, 0);
        if (wrote != len)
            fail("cannot put the job in its control group ", path, ": ", error_text(wrote < 0 ? -wrote : EIO), NULL);
        SYS(close, fd, 0, 0, 0);
    }
}

static int in_groups(uint32_t gid, const uint32_t *groups, long count) {
    for (long i = 0; i < count; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/* Become the job's user for good, and check it (launcher.py's drop_privileges). */
static void drop_privileges(const char *uid_text, const char *gid_text, char *groups_text) {
    long long uid, gid, value;
    if (parse_int(uid_text, ID_MAX, &uid) || parse_int(gid_text, ID_MAX, &gid))
        fail("bad user or group ids in the launch request", NULL);
    char count_text[24], gid_number[24], uid_number[24];
    decimal(gid_number, gid);
    decimal(uid_number, uid);
    uint32_t *groups = sys_alloc((NGROUPS_MAX + 1) * sizeof *groups);
    if (!groups)
        fail("launch failed: out of memory", NULL);
    long count = 0;
    groups[count++] = (uint32_t)gid;
    for (char *item = groups_text, *next; item && *item; item = next) {
        for (next = item; *next && *next != ','; next++)
            ;
        if (*next)
            *next++ = '\0';
        else
            next = NULL;
        if (!*item)
            continue;
        if (parse_int(item, ID_MAX, &value))
            fail("bad user or group ids in the launch request", NULL);
        if ((uint32_t)value == (uint32_t)gid)
            continue;
        if (count > NGROUPS_MAX)
            fail("could not set the ", decimal(count_text, count + 1), " groups of gid ", gid_number,
                 ": Invalid argument", NULL);
        groups[count++] = (uint32_t)value;
    }
    long r = SYS(setgroups, count, groups, 0, 0);
    if (r != 0)
        fail("could not set the ", decimal(count_text, count), " groups of gid ", gid_number, ": ", error_text(-r), NULL);
    if ((r = SYS(setresgid, gid, gid, gid, 0)) != 0)
        fail("could not set gid ", gid_number, ": ", error_text(-r), NULL);
    if ((r = SYS(setresuid, uid, uid, uid, 0)) != 0)
        fail("could not drop privileges to uid ", uid_number, ": ", error_text(-r), NULL);
    /* Trust nothing: what the kernel says now is what the job runs with. */
    uint32_t ru, eu, su, rg, eg, sg;
    long have = SYS(getgroups, 0, 0, 0, 0);
    uint32_t *now = have > 0 ? sys_alloc((unsigned long)have * sizeof *now) : NULL;
    if (have > 0 && (!now || SYS(getgroups, have, now, 0, 0) != have))
        have = -1;
    int kept = have >= 0 && SYS(getresuid, &ru, &eu, &su, 0) == 0 && SYS(getresgid, &rg, &eg, &sg, 0) == 0 &&
               ru == uid && eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
    for (long i = 0; kept && i < have; i++)
        kept = in_groups(now[i], groups, count);
    for (long i = 0; kept && i < count; i++)
        kept = in_groups(groups[i], now, have);
    if (!kept)
        fail("privileges not dropped to uid ", uid_number, " gid ", gid_number, NULL);
}

/* Whether an output file of another user (`owner`) sits in a sticky directory others may write
   to, such as /tmp: one made there ahead, under a name anyone can work out (slurm-<id>.out),
   would receive the job's output. The kernel's fs.protected_regular rule, whatever the sysctl. */
static int planted(const char *path, unsigned owner) {
    if (owner == (unsigned)SYS(getuid, 0, 0, 0, 0))
        return 0;
    char parent[4200];
    long cut = -1, n = 0;
    for (; path[n] && n < (long)sizeof parent - 1; n++) {
        parent[n] = path[n];
        if (path[n] == '/')
            cut = n;
    }
    if (cut < 0) {
        parent[0] = '.';
        cut = 1;
    } else if (cut == 0) {
        cut = 1;
    }
    parent[cut] = 0;
    struct statx dir;
    if (syscall6(__NR_statx, AT_FDCWD, (long)parent, 0, STATX_TYPE | STATX_MODE | STATX_UID, (long)&dir, 0) != 0)
        return 0;
    return (dir.stx_mode & S_ISVTX) && (dir.stx_mode & 022) && dir.stx_uid != owner;
}

static int open_output(const char *path, const char *what, int flags) {
    int fd = sys_open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        fail("cannot open ", what, " file '", path, "': ", error_text(-fd), NULL);
    struct statx st;
    /* /dev/null is the one non-regular file a job may write to, as users often ask for it. */
    if (sys_fstat(fd, &st) != 0 || (!S_ISREG(st.stx_mode) && !same(path, "/dev/null")))
        fail(what, " file '", path, "' is not a regular file", NULL);
    if (S_ISREG(st.stx_mode) && planted(path, st.stx_uid))
        fail(what, " file '", path, "' belongs to another user, in a directory everyone may write to", NULL);
    return fd;
}

/* The request's fields, split in place; their number in *count (NULL: unreadable). */
static char **read_request(int fd, long long *count) {
    struct statx st;
    if (sys_fstat(fd, &st) != 0)
        return NULL;
    unsigned long size = (unsigned long)st.stx_size;
    char *data = sys_alloc(size + 1);
    if (!data)
        return NULL;
    /* From the start: the launcher's writes left the shared offset at the end. */
    for (unsigned long done = 0; done < size;) {
        long n = SYS(pread64, fd, data + done, size - done, done);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return NULL;
        done += (unsigned long)n;
    }
    data[size] = '\0';
    long long fields = 1;
    for (unsigned long i = 0; i < size; i++)
        fields += data[i] == '\0';
    char **field = sys_alloc(((unsigned long)fields + 1) * sizeof *field);
    if (!field)
        return NULL;
    field[0] = data;
    for (unsigned long i = 0, k = 1; i < size; i++)
        if (data[i] == '\0')
            field[k++] = data + i + 1;
    *count = fields;
    return field;
}

/* fd as `target`, without close-on-exec. */
static void place(int fd, int target) {
    long r = fd == target ? SYS(fcntl, fd, F_SETFD, 0, 0) : SYS(dup3, fd, target, 0, 0);
    if (r < 0)
        fail("launch failed: dup2: ", error_text(-r), NULL);
}

/* `starter --check`: whether the system calls it cannot do without work here. statx is the one a
   machine may lack (Linux has it since 4.11) or refuse (a seccomp policy older than it), and
   without it every job would fail. 0, or 3 with why on standard error; starter.py runs it once
   before the launcher is given the starter. */
static __attribute__((noreturn)) void check(void) {
    struct statx st;
    const char *what = "statx";
    long r = sys_lstat("/", &st);
    if (r == 0) {
        int fd = sys_open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        what = fd < 0 ? "open" : "statx";
        r = fd < 0 ? fd : sys_fstat(fd, &st);
    }
    if (r == 0)
        sys_exit(0);
    char message[200];
    long n = compose(message, sizeof message - 1, "conductor-job-starter: ", what, ": ", error_text(-r), NULL);
    message[n++] = '\n';
    sys_write_all(2, message, n);
    sys_exit(3);
}

__attribute__((noreturn, used)) void start(long *stack) {
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    long long number, argn, count = 0;
    if (argc == 2 && same(argv[1], "--check"))
        check();
    if (argc != 4 || parse_int(argv[1], INT_MAX, &number))
        sys_exit(2);
    status_fd = (int)number;
    if (parse_int(argv[2], INT_MAX, &number))
        fail("bad launch request", NULL);
    int go = (int)number;
    char **field = parse_int(argv[3], INT_MAX, &number) ? NULL : read_request((int)number, &count);
    int valid = field && count >= FIXED + 1 && !parse_int(field[FIXED - 1], INT_MAX, &argn) && argn >= 1 &&
                argn <= count - FIXED;

    /* The go (see protocol.py); a setup failure is told only after it, below the "start" line. */
    char byte = 0;
    long got;
    do
        got = SYS(read, go, &byte, 1, 0);
    while (got == -EINTR);
    if ((got != 1 || byte != 'g') && !(valid && started_all_the_same(field[0])))
        sys_exit(1);
    SYS(close, go, 0, 0, 0);
    if (!valid)
        fail("bad launch request", NULL);

    const char *nproc = field[2], *uid = field[3], *gid = field[4], *cwd = field[6], *in = field[7],
               *out = field[8], *err = field[9], *mode = field[10];
    char *cgroup = field[1], *groups = field[5];
    char **command = field + FIXED;
    long long variables = count - FIXED - argn;
    char **environment = sys_alloc(((unsigned long)variables + 2) * sizeof *environment);
    if (!environment)
        fail("launch failed: out of memory", NULL);
    memcpy(environment, command + argn, (size_t)variables * sizeof *environment);
    /* The task's own pid, as slurmstepd gives each task: known only here. One the job was
       submitted with (from inside another job) is replaced. */
    char task_pid[48] = "SLURM_TASK_PID=";
    decimal(task_pid + length(task_pid), SYS(getpid, 0, 0, 0, 0));
    long long slot = variables;
    for (long long i = 0; i < variables; i++)
        if (starts_with(environment[i], "SLURM_TASK_PID=")) {
            slot = i;
            break;
        }
    environment[slot] = task_pid;
    if (slot == variables)
        variables++;
    environment[variables] = NULL;
    command[argn] = NULL; /* execve reads the command's arguments up to here */
    /* The submitter's file mode mask (SLURM_UMASK, octal, as sbatch sends it), as slurmstepd
       sets it before the output files are made, and takes it from the batch script's
       environment. Anything but 1 to 4 octal digits is not a mask anybody meant: left alone. */
    for (long long i = 0; i < variables; i++)
        if (starts_with(environment[i], "SLURM_UMASK=")) {
            const char *digits = environment[i] + length("SLURM_UMASK=");
            long mask = 0, n = 0;
            while (digits[n] >= '0' && digits[n] <= '7' && n < 5)
                mask = mask * 8 + (digits[n++] - '0');
            if (digits[n] == 0 && n >= 1 && n <= 4)
                SYS(umask, mask & 0777, 0, 0, 0);
            environment[i] = environment[variables - 1];
            environment[--variables] = NULL;
            break;
        }

    if (*cgroup)
        join_cgroups(cgroup);
    if (*nproc) {
        if (parse_int(nproc, INT64_MAX / 2, &number))
            fail("bad launch request", NULL);
        uint64_t limit[2] = {(uint64_t)number, (uint64_t)number};
        long r = SYS(prlimit64, 0, RLIMIT_NPROC, limit, 0);
        if (r != 0)
            fail("launch failed: cannot set the process limit: ", error_text(-r), NULL);
    }
    if (*uid)
        drop_privileges(uid, gid, groups);
    long r = SYS(chdir, cwd, 0, 0, 0);
    long moved = 0; /* chdir's error when the job runs in /tmp instead */
    if (r != 0) {
        /* As slurmstepd: the job runs in /tmp, and its error file says so; unless a file of its
           own is named from the working directory, which is then not to be found. */
        if (in[0] != '/' || out[0] != '/' || err[0] != '/')
            fail("working directory '", cwd, "' is not usable: ", error_text(-r), NULL);
        moved = r;
        r = SYS(chdir, "/tmp", 0, 0, 0);
        if (r != 0)
            fail("working directory '", cwd, "' is not usable, nor /tmp: ", error_text(-r), NULL);
    }

    /* Opened as the job's user. NOFOLLOW: see launcher.py. */
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (same(mode, "append") ? O_APPEND : O_TRUNC);
    int in_fd = sys_open(in, O_RDONLY | O_CLOEXEC, 0);
    if (in_fd < 0)
        fail("cannot open input file '", in, "': ", error_text(-in_fd), NULL);
    int out_fd = open_output(out, "output", flags);
    int err_fd = same(err, out) ? out_fd : open_output(err, "error", flags);
    place(in_fd, 0);
    place(out_fd, 1);
    place(err_fd, 2);
    if (moved) {
        char note[4200];
        long n = compose(note, sizeof note - 1, "slurmstepd: error: couldn't chdir to `", cwd, "': ",
                         error_text(-moved), ": going to /tmp instead", NULL);
        note[n++] = '\n';
        sys_write_all(2, note, n);
    }

    /* What the launcher changed must not reach the job; it gets its stdio and nothing else. */
    /* SIGPIPE, which Python ignores, and the C library's own 32 and 33, which posix_spawn
       leaves ignored: a job finds its signals as a shell leaves them. */
    unsigned long action[4] = {0, 0, 0, 0}; /* SIG_DFL, no flags, an empty mask */
    const int ignored[] = {SIGPIPE, 32, 33};
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        SYS(rt_sigaction, ignored[i], action, 0, 8);
    uint64_t no_signals = 0;
    SYS(rt_sigprocmask, SIG_SETMASK, &no_signals, 0, 8);
    if (SYS(close_range, 3, ~0U, 0, 0) != 0) {
        uint64_t open_max[2] = {65536, 65536};
        SYS(prlimit64, 0, 7 /* RLIMIT_NOFILE */, 0, open_max);
        for (uint64_t fd = 3; fd < open_max[0] && fd < (1U << 20); fd++)
            SYS(close, fd, 0, 0, 0);
    }
    r = SYS(execve, command[0], command, environment, 0);
    char message[4200];
    long n = compose(message, sizeof message - 1, "conductor: cannot execute ", command[0], ": ", error_text(-r), NULL);
    message[n++] = '\n';
    sys_write_all(2, message, n); /* if the job's error file is gone, nothing more can say so */
    sys_exit(127);
}
