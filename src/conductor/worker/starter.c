/* The job starter: the job's process from the launcher's spawn to the exec of its command.

   What launcher.py's child does after a fork (Launcher.prepare and Launcher.child), done by a
   small program the launcher spawns instead (posix_spawn: the child borrows the launcher's memory
   until this program runs, so nothing of the launcher's heap is copied, faulted in or torn
   down for each job). Same steps, same order, same messages; see protocol.py for what
   "started" means and launcher.py for why each step is where it is.

   The worker builds it (starter.py) with the machine's C compiler; without one, the launcher
   forks as before. It runs as root until it drops privileges: it reads nothing from its
   environment (it is spawned with none) and trusts its arguments, which only the launcher gives:

     starter STATUS_FD GO_FD REQUEST_FD

   three descriptors it inherits: the job's status file, the read end of its go pipe, and a
   file that holds the request, NUL-separated fields:

     STATUS_PATH CGROUP NPROC UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE ARGC ARGV... NAME=VALUE...

   as protocol.py has them, NAME=VALUE the job's environment as execve takes it. 0 and 1 are
   /dev/null, 2 the launcher's log. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define FIXED 12 /* fields before ARGV */

static int status_fd = -1;

/* The setup failed: an "error" line in the status file (protocol.error_line), and no job. */
static void fail(const char *format, ...) {
    char message[4096];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof message)
        n = sizeof message - 1;
    for (int i = 0; i < n; i++)
        if (message[i] == '\n')
            message[i] = ' ';
    char line[sizeof message + 8];
    int len = snprintf(line, sizeof line, "error %.*s\n", n, message);
    if (len > 0 && write(status_fd, line, (size_t)len) < 0) {
        /* nothing more to say it with */
    }
    _exit(1);
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
    struct stat mine, named;
    if (fstat(status_fd, &mine) != 0 || lstat(status_path, &named) != 0)
        return 0;
    if (mine.st_dev != named.st_dev || mine.st_ino != named.st_ino)
        return 0;
    char path[64], head[64], want[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", status_fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    int w = snprintf(want, sizeof want, "start %d ", (int)getpid());
    return n >= w && memcmp(head, want, (size_t)w) == 0;
}

static void join_cgroups(char *files) {
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d", (int)getpid());
    for (char *path = files, *next; path; path = next) {
        next = strchr(path, ':');
        if (next)
            *next++ = '\0';
        /* O_CREAT: see launcher.py's join_cgroups. */
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, pid, (size_t)len) != len)
            fail("cannot put the job in its control group %s: %s", path, strerror(errno));
        close(fd);
    }
}

static int in_groups(gid_t gid, const gid_t *groups, int count) {
    for (int i = 0; i < count; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/* Become the job's user for good, and check it (launcher.py's drop_privileges). */
static void drop_privileges(const char *uid_text, const char *gid_text, char *groups_text) {
    long long uid, gid, value;
    if (parse_int(uid_text, UINT_MAX - 1, &uid) || parse_int(gid_text, UINT_MAX - 1, &gid))
        fail("bad user or group ids in the launch request");
    long max = sysconf(_SC_NGROUPS_MAX);
    if (max < 1)
        max = 65536;
    gid_t *groups = calloc((size_t)max + 1, sizeof *groups);
    if (!groups)
        fail("launch failed: out of memory");
    int count = 0;
    groups[count++] = (gid_t)gid;
    for (char *item = groups_text, *next; item && *item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        if (!*item)
            continue;
        if (parse_int(item, UINT_MAX - 1, &value))
            fail("bad user or group ids in the launch request");
        if ((gid_t)value == (gid_t)gid)
            continue;
        if (count > max)
            fail("could not set the %d groups of gid %lld: Invalid argument", count + 1, gid);
        groups[count++] = (gid_t)value;
    }
    if (setgroups((size_t)count, groups) != 0)
        fail("could not set the %d groups of gid %lld: %s", count, gid, strerror(errno));
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0)
        fail("could not set gid %lld: %s", gid, strerror(errno));
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)
        fail("could not drop privileges to uid %lld: %s", uid, strerror(errno));
    /* Trust nothing: what the kernel says now is what the job runs with. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    int have = getgroups(0, NULL);
    gid_t *now = have > 0 ? calloc((size_t)have, sizeof *now) : NULL;
    if (have > 0 && (!now || getgroups(have, now) != have))
        have = -1;
    int same = have >= 0 && getresuid(&ru, &eu, &su) == 0 && getresgid(&rg, &eg, &sg) == 0 && ru == uid &&
               eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
    for (int i = 0; same && i < have; i++)
        same = in_groups(now[i], groups, count);
    for (int i = 0; same && i < count; i++)
        same = in_groups(groups[i], now, have);
    if (!same)
        fail("privileges not dropped to uid %lld gid %lld", uid, gid);
    free(now);
    free(groups);
}

static int open_output(const char *path, const char *what, int flags) {
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        fail("cannot open %s file '%s': %s", what, path, strerror(errno));
    struct stat st;
    /* /dev/null is the one non-regular file a job may write to, as users often ask for it. */
    if (fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && strcmp(path, "/dev/null") != 0))
        fail("%s file '%s' is not a regular file", what, path);
    return fd;
}

/* The request's fields, split in place; their number in *count (NULL: unreadable). */
static char **read_request(int fd, long long *count) {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0)
        return NULL;
    size_t size = (size_t)st.st_size;
    char *data = malloc(size + 1);
    if (!data)
        return NULL;
    /* From the start: the launcher's writes left the shared offset at the end. */
    for (size_t done = 0; done < size;) {
        ssize_t n = pread(fd, data + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        done += (size_t)n;
    }
    data[size] = '\0';
    long long fields = 1;
    for (size_t i = 0; i < size; i++)
        fields += data[i] == '\0';
    char **field = calloc((size_t)fields + 1, sizeof *field);
    if (!field)
        return NULL;
    field[0] = data;
    for (size_t i = 0, k = 1; i < size; i++)
        if (data[i] == '\0')
            field[k++] = data + i + 1;
    *count = fields;
    return field;
}

int main(int argc, char **argv) {
    long long number, argn, count = 0;
    if (argc != 4 || parse_int(argv[1], INT_MAX, &number))
        return 2;
    status_fd = (int)number;
    if (parse_int(argv[2], INT_MAX, &number))
        fail("bad launch request");
    int go = (int)number;
    char **field = parse_int(argv[3], INT_MAX, &number) ? NULL : read_request((int)number, &count);
    int valid = field && count >= FIXED + 1 && !parse_int(field[FIXED - 1], INT_MAX, &argn) && argn >= 1 &&
                argn <= count - FIXED;

    /* The go (see protocol.py); a setup failure is told only after it, below the "start" line. */
    char byte = 0;
    ssize_t got;
    do
        got = read(go, &byte, 1);
    while (got < 0 && errno == EINTR);
    if ((got != 1 || byte != 'g') && !(valid && started_all_the_same(field[0])))
        _exit(1);
    close(go);
    if (!valid)
        fail("bad launch request");

    const char *nproc = field[2], *uid = field[3], *gid = field[4], *cwd = field[6], *in = field[7],
               *out = field[8], *err = field[9], *mode = field[10];
    char *cgroup = field[1], *groups = field[5];
    char **command = field + FIXED;
    long long variables = count - FIXED - argn;
    char **environment = calloc((size_t)variables + 1, sizeof *environment);
    if (!environment)
        fail("launch failed: out of memory");
    memcpy(environment, command + argn, (size_t)variables * sizeof *environment);
    command[argn] = NULL; /* execve reads the command's arguments up to here */

    if (*cgroup)
        join_cgroups(cgroup);
    if (*nproc) {
        if (parse_int(nproc, LLONG_MAX / 2, &number))
            fail("bad launch request");
        struct rlimit limit = {(rlim_t)number, (rlim_t)number};
        if (setrlimit(RLIMIT_NPROC, &limit) != 0)
            fail("launch failed: cannot set the process limit: %s", strerror(errno));
    }
    if (*uid)
        drop_privileges(uid, gid, groups);
    if (chdir(cwd) != 0)
        fail("working directory '%s' is not usable: %s", cwd, strerror(errno));

    /* Opened as the job's user. NOFOLLOW: see launcher.py. */
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | (strcmp(mode, "append") == 0 ? O_APPEND : O_TRUNC);
    int in_fd = open(in, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0)
        fail("cannot open input file '%s': %s", in, strerror(errno));
    int out_fd = open_output(out, "output", flags);
    int err_fd = strcmp(err, out) == 0 ? out_fd : open_output(err, "error", flags);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        fail("launch failed: dup2: %s", strerror(errno));

    /* What the launcher changed must not reach the job; it gets its stdio and nothing else. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int closed = -1;
#ifdef SYS_close_range
    closed = (int)syscall(SYS_close_range, 3U, ~0U, 0U);
#endif
    if (closed != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
            close((int)fd);
    }
    execve(command[0], command, environment);
    int why = errno;
    char message[PATH_MAX + 256];
    int len = snprintf(message, sizeof message, "conductor: cannot execute %s: %s\n", command[0], strerror(why));
    if (len > 0 && write(2, message, (size_t)len) < 0) {
        /* the job's error file is gone */
    }
    _exit(127);
}
