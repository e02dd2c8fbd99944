# The job launcher: the parent of every job a worker starts, and the one that reports their ends.
#
# The worker starts this file once (`--serve`) and sends it requests; each job is one fork of it
# (~0.2 ms), which execs the job's command. Perl because it is on every Debian system (perl-base
# is essential); POSIX and Fcntl are loaded once here and add next to nothing to a fork.
#
# Why the launcher, not the worker, is the jobs' parent: a job must outlive its worker (a restart
# re-adopts it), and only a process's parent learns its exact wait status. The launcher outlives
# its worker too: when its requests end (the worker stopped or died) it launches nothing more,
# lets go of the launch lock, and goes on reaping and recording until its last job has ended.
#
# Arguments: --serve STATUS_DIR O_CLOEXEC SIGIO: this platform's numbers, which neither Fcntl nor
# POSIX has (Config has SIGIO's, at a cost in memory that every fork pays).
# Fixed descriptors: 0 the worker's requests, 1 the replies, 2 a log, 3 the worker's launch lock.
# Its own environment is a fixed minimal one: it runs as root.
#
# A request is a 4-byte big-endian length and a NUL-separated frame:
#   TAG STATUS_FILE SPARE UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE ARGC ARGV... NAME=VALUE...
# SPARE, if not empty, is a status file the worker is done with, to be rewritten and renamed to
# STATUS_FILE: making files costs more than reusing them (ext4 without a journal scans past
# every recently deleted inode for each new one). UID empty means: do not change user. CPU
# binding is the launcher's own affinity at the fork, which the worker sets before the request.
#
# Replies, one line each (written in batches):
#   "TAG PID STARTTIME"          the job's process was started
#   "TAG error MESSAGE"          no process was made
#   "exit TAG CODE SIG UTIME STIME"  the process ended (as its status file says)
#   "exit TAG"                   it ended and its status file says why (a setup failure)
#   "bye"                        the requests ended and the launch lock is let go
#
# STATUS_FILE, made by the launcher (as root, 0600) before the job may run, holds, in order:
#   "start PID STARTTIME LAUNCHER_PID LAUNCHER_STARTTIME"  written first, before the job may run
#   "error MESSAGE"               the job's setup failed; its command never ran
#   "exit CODE SIG UTIME STIME"   written once the launcher reaped it (CPU times in seconds)
# STARTTIME is field 22 of /proc/PID/stat: with the pid, a process's identity (pids are reused).
#
# What "started" means: the child makes itself a session and waits for the launcher's go (a
# byte on a pipe of its own), which comes once its "start" line is in the status file under
# the job's name; only then does it drop privileges, set the job's environment, enter CWD (a
# failure is an "error" line) and run the command. A child whose launcher died without the go
# runs only if that line is in place all the same, and gives up otherwise. So a job runs if
# and only if its status file has its "start" line: once the launcher is gone, or the launch
# lock free (it read its last request and dealt with it), a claimed job without the line may
# be launched again, and one with it is never sent again.

use strict;
use POSIX ();
use Fcntl qw(O_RDONLY O_RDWR O_WRONLY O_CREAT O_EXCL O_TRUNC O_APPEND O_NOFOLLOW O_NONBLOCK O_ASYNC
             F_GETFL F_SETFL F_SETOWN SEEK_CUR);

# File descriptors, not Perl handles: a handle costs several system calls to set up, per job.
my ($serve, $status_dir, $cloexec, $sigio) = @ARGV;
die "launcher: usage: shepherd.pl --serve STATUS_DIR O_CLOEXEC SIGIO\n"
    unless defined $sigio && $serve eq '--serve' && "$cloexec $sigio" =~ /^[1-9][0-9]* [1-9][0-9]*$/;
$cloexec = 0 + $cloexec;
$sigio = 0 + $sigio;
my $LOCK_FD = 3;
$0 = "conductor-launcher $status_dir";
# Whatever the worker's process held without close-on-exec (and what its own starter left
# open) came along through posix_spawn: none of it is the launcher's, nor may reach a job.
close_from($LOCK_FD + 1);

my $null = POSIX::open('/dev/null', O_RDWR | $cloexec) // die "launcher: /dev/null: $!\n";
my $me = "$$ " . start_time($$);

# Waiting is sigsuspend with every other moment's mask blocking SIGCHLD (a job ended) and SIGIO
# (a request came, see O_ASYNC below): neither can slip in between looking and waiting.
$SIG{CHLD} = sub { };
$SIG{IO} = sub { };
# A write to a gone worker must fail (EPIPE), not kill.
$SIG{PIPE} = 'IGNORE';
my $run_mask = POSIX::SigSet->new(POSIX::SIGCHLD(), $sigio);
my $wait_mask = POSIX::SigSet->new();    # also the jobs' mask (the worker spawns us with none)
POSIX::sigprocmask(POSIX::SIG_SETMASK(), $run_mask) or die "launcher: sigprocmask: $!\n";
fcntl(STDIN, F_SETOWN, $$) or die "launcher: F_SETOWN: $!\n";
my $stdin_flags = fcntl(STDIN, F_GETFL, 0) or die "launcher: F_GETFL: $!\n";
fcntl(STDIN, F_SETFL, $stdin_flags | O_NONBLOCK | O_ASYNC) or die "launcher: F_SETFL: $!\n";

my %jobs;          # pid => [tag, status fd, bytes the launcher wrote to it]
my $replies = '';  # written once per round
my $buf = '';
my $open = 1;
while (1) {
    while ($open) {
        my $n = POSIX::read(0, my $chunk, 65536);
        if (!defined $n) {
            last if $! == POSIX::EAGAIN() || $! == POSIX::EINTR();
            $n = 0;    # unreadable: as good as closed
        }
        if ($n == 0) {
            # No request can come any more: a worker started next may take the lock and decide,
            # from the status files, which of its claimed jobs never started.
            $open = 0;
            POSIX::close($LOCK_FD);
            $replies .= "bye\n";
            last;
        }
        $buf .= $chunk;
        my $pos = 0;
        while (length($buf) - $pos >= 4) {
            my $len = unpack('N', substr($buf, $pos, 4));
            last if length($buf) - $pos - 4 < $len;
            launch(substr($buf, $pos + 4, $len));
            $pos += 4 + $len;
        }
        substr($buf, 0, $pos, '');
    }
    reap() if %jobs;
    while (length $replies) {
        # The worker's pipe is the launcher's alone (jobs never hold it): no write interleaves.
        my $w = POSIX::write(1, $replies, length $replies);
        last unless defined $w && $w > 0;    # the worker is gone: the status files say it all
        substr($replies, 0, $w, '');
    }
    $replies = '';
    last if !$open && !%jobs;
    POSIX::sigsuspend($wait_mask);
}
exit 0;

sub start_time {
    my ($pid) = @_;
    my $fd = POSIX::open("/proc/$pid/stat", O_RDONLY) // return 0;
    POSIX::read($fd, my $stat, 1024);
    POSIX::close($fd);
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return (split(' ', substr($stat, rindex($stat, ')') + 2)))[19] // 0;
}

# Close every descriptor from $first up: close_range(2) (436 on x86-64, arm64 and every
# architecture of the generic system call table),
# or, on kernels before 5.9, each one /proc/self/fd lists.
sub close_from {
    my ($first) = @_;
    return if syscall(436, $first, 0xFFFFFFFF, 0) == 0;
    opendir(my $dir, '/proc/self/fd') or return;
    my @fds = grep { /^[0-9]+$/ && $_ >= $first } readdir($dir);
    closedir($dir);
    POSIX::close($_) for @fds;
}

sub reap {
    while (%jobs) {
        my (undef, undef, $cutime, $cstime) = times();
        my $pid = waitpid(-1, POSIX::WNOHANG());
        last if $pid <= 0;
        my $status = $?;
        my (undef, undef, $cutime2, $cstime2) = times();
        my $job = delete $jobs{$pid} or next;
        # Slurm ends every process of a job when its batch script ends. Right away, while the
        # group's id cannot yet belong to anyone else.
        kill('-KILL', $pid);
        my ($tag, $st, $own) = @$job;
        my $line = sprintf("%d %d %.2f %.2f", ($status >> 8) & 255, $status & 127, $cutime2 - $cutime, $cstime2 - $cstime);
        # More in the file than the launcher wrote: the job's setup failure, for the worker to read.
        my $clean = (POSIX::lseek($st, 0, SEEK_CUR) // -1) == $own;
        POSIX::write($st, "exit $line\n", length($line) + 6);
        POSIX::close($st);
        $replies .= $clean ? "exit $tag $line\n" : "exit $tag\n";
    }
}

sub launch {
    my ($frame) = @_;
    my ($tag, $status_path, $spare, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $argc, @rest) =
        split(/\0/, $frame, -1);
    if (!defined $argc || $argc !~ /^[1-9][0-9]*$/ || @rest < $argc || $tag !~ /^[0-9]+$/) {
        $replies .= ($tag // '') . " error bad launch request\n";
        return;
    }
    my @cmd = splice(@rest, 0, $argc);
    # Never the file of an earlier run, which a process of that run might still hold: a new
    # one, or a spare (a reported job's, whose old lines must never pass for this job's: it
    # takes the name only once its first line is this job's, and the rest is cut off).
    my $st;
    if (length $spare) {
        $st = POSIX::open($spare, O_WRONLY | O_NOFOLLOW | $cloexec);
    }
    undef $spare unless defined $st;
    if (!defined $st) {
        unlink($status_path);
        $st = POSIX::open($status_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | $cloexec, 0600);
        if (!defined $st) {
            $replies .= "$tag error cannot create $status_path: $!\n";
            return;
        }
    }
    # Open only until this job's fork has them: no other job inherits them.
    my ($go_r, $go_w) = POSIX::pipe();
    my $pid = defined $go_w ? fork() : undef;
    if (!defined $pid) {
        $replies .= "$tag error fork: $!\n";
        POSIX::close($_) for grep { defined } ($st, $go_r, $go_w);
        unlink($status_path) unless defined $spare;
        return;
    }
    if ($pid == 0) {
        POSIX::close($go_w);
        child($st, $status_path, $go_r, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, \@cmd, \@rest);
    }
    POSIX::close($go_r);
    my $ticks = start_time($pid);
    # Written at the offset the launcher and the job's process share: lines follow one another.
    my $start = "start $pid $ticks $me\n";
    POSIX::write($st, $start, length $start);
    if (defined $spare) {
        # Cut rather than emptied when opened (O_TRUNC): a file cut to nothing gives its block
        # back and the next write takes one again, which costs more than the rest together.
        if (!truncate($spare, length $start) || !rename($spare, $status_path)) {
            my $why = "$!";
            kill('KILL', $pid);    # before its go: it never ran
            waitpid($pid, 0);
            POSIX::close($_) for ($st, $go_w);
            $replies .= "$tag error cannot make $status_path: $why\n";
            return;
        }
    }
    POSIX::write($go_w, 'g', 1);
    POSIX::close($go_w);
    $jobs{$pid} = [$tag, $st, length $start];
    $replies .= "$tag $pid $ticks\n";
}

# The job's process, from the fork to the exec: never returns.
sub child {
    my ($st, $status_path, $go, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $cmd, $envpairs) = @_;
    my $fail = sub {
        my ($msg) = @_;
        $msg =~ s/\n/ /g;
        $msg = "error $msg\n";
        POSIX::write($st, $msg, length $msg);
        POSIX::_exit(1);
    };
    eval {
        # Its own session and process group: the worker's signals to the job reach it alone.
        POSIX::setsid() or die "setsid: $!\n";
        # Let go of the worker's pipes and lock at once: the worker knows the launcher died by
        # the end of its replies, and a restarted worker waits for the lock.
        POSIX::dup2($null, 0);
        POSIX::dup2($null, 1);
        POSIX::close($LOCK_FD);

        # The go: the "start" line is written, and nothing happened before it. A launcher that
        # died before giving it may have written the line all the same, which makes the job
        # started for the worker (it will never send it again): run then, and only then.
        # (POSIX::read says "0 but true" at the end of a pipe, hence the comparison.)
        my $n = POSIX::read($go, my $byte, 1);
        POSIX::_exit(1) unless (defined $n && $n == 1) || started_all_the_same($st, $status_path);
        POSIX::close($go);

        if ($uid ne '') {
            my @gids = grep { length } split(/,/, $groups);
            $) = join(' ', $gid, $gid, @gids);
            $fail->("could not set groups to $gid $groups: $!") if (split(/ /, $)))[0] != $gid;
            $( = $gid;
            $fail->("could not set gid $gid: $!") if $( != $gid;
            $< = $> = $uid;
            $fail->("could not drop privileges to uid $uid: $!") if $< != $uid || $> != $uid;
        }

        # Only now, as the job's user: variables such as LD_PRELOAD must not act for root.
        %ENV = ();
        for my $pair (@$envpairs) {
            my ($name, $value) = split(/=/, $pair, 2);
            $ENV{$name} = defined $value ? $value : '' if length $name;
        }

        chdir($cwd) or $fail->("working directory '$cwd' is not usable: $!");

        my $extra = $mode eq 'append' ? O_APPEND : O_TRUNC;
        # NOFOLLOW: a symbolic link planted at the output path must not redirect the job's writes.
        my $open_out = sub {
            my ($path, $what) = @_;
            my $fd = POSIX::open($path, O_WRONLY | O_CREAT | O_NOFOLLOW | $extra | $cloexec, 0644)
                // $fail->("cannot open $what file '$path': $!");
            # /dev/null is the one non-regular file a job may write to, as users often ask for it.
            # (Not POSIX::fstat: Perl code, compiled at its first call, which would be in every job.)
            $fail->("$what file '$path' is not a regular file") unless -f "/proc/self/fd/$fd" || $path eq '/dev/null';
            return $fd;
        };
        my $in_fd = POSIX::open($in, O_RDONLY | $cloexec) // $fail->("cannot open input file '$in': $!");
        my $out_fd = $open_out->($out, 'output');
        my $err_fd = $err eq $out ? $out_fd : $open_out->($err, 'error');
        POSIX::dup2($in_fd, 0) // $fail->("dup stdin: $!");
        POSIX::dup2($out_fd, 1) // $fail->("dup stdout: $!");
        POSIX::dup2($err_fd, 2) // $fail->("dup stderr: $!");

        # What the launcher changed must not reach the job: exec keeps ignored signals and the mask.
        $SIG{CHLD} = $SIG{IO} = $SIG{PIPE} = 'DEFAULT';
        POSIX::sigprocmask(POSIX::SIG_SETMASK(), $wait_mask);
        # The job gets its stdio and nothing else the launcher holds (the status file is
        # close-on-exec; this is for anything that is not).
        close_from(3);
        exec { $cmd->[0] } @$cmd;
        my $msg = "conductor: cannot execute $cmd->[0]: $!\n";
        POSIX::write(2, $msg, length $msg);
        POSIX::_exit(127);
    };
    $fail->($@ || "launch failed");
}

# Whether the status file under the job's name is this process's and starts with its line.
sub started_all_the_same {
    my ($st, $status_path) = @_;
    my @mine = stat("/proc/self/fd/$st");
    my @named = lstat($status_path);
    return 0 unless @mine && @named && $mine[0] == $named[0] && $mine[1] == $named[1];
    my $fd = POSIX::open("/proc/self/fd/$st", O_RDONLY) // return 0;
    POSIX::read($fd, my $head, 64);
    POSIX::close($fd);
    return index($head // '', "start $$ ") == 0;
}
