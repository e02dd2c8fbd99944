# The job launcher and its shepherds: the processes between a worker and its jobs' scripts.
#
# Why a shepherd exists: the job must outlive its worker (a restart re-adopts it), so the one
# process that learns the script's exact wait status must be the job's own, not the worker.
#
# Why a launcher: starting an interpreter per job (exec of perl, ~2 ms of CPU, plus the worker's
# posix_spawn holding the Python GIL) was most of the cost of a short job. The worker starts
# this file once per worker as a fork server (`--serve`); every job's shepherd is a fork of it
# (~0.2 ms). Perl because it is on every Debian system (perl-base is essential); POSIX, which
# an exec per job could not afford, is loaded once here and adds next to nothing to a fork.
#
# Arguments: --serve STATUS_DIR FLAGS PADDING
# FLAGS is "WRITE_CREATE_NOFOLLOW,TRUNC,APPEND", this platform's open(2) flags, from the worker.
# PADDING only makes argv long enough for the shepherds' process titles (below).
# Fixed descriptors: 0 the worker's requests, 1 the replies, 2 a log, 3 the worker's lock.
# Its own environment is a fixed minimal one: it runs as root.
#
# A request is a 4-byte big-endian length and a NUL-separated frame:
#   TAG STATUS_FILE UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE ARGC ARGV... NAME=VALUE...
# UID empty means: do not change user. CPU binding is the launcher's own affinity at the fork,
# which the worker sets before sending the request.
#
# Each request gets exactly one reply line, "TAG PID" from the shepherd or "TAG error MESSAGE"
# from the launcher when no shepherd could be made. The shepherd writes its reply itself, and
# that write is its go: when it fails (the worker is gone), the shepherd exits having touched
# nothing. So a request the worker saw no reply to never started, whatever happened meanwhile.
# A shepherd then writes "start PID" to STATUS_FILE (opened as root), drops privileges, enters
# CWD, opens the output files as the job's user, runs the command as its child and writes
# "exit CODE SIGNAL CHILD_UTIME CHILD_STIME" to STATUS_FILE.

use strict;
use POSIX ();

my ($serve, $status_dir, $flags) = @ARGV;
die "shepherd: usage: shepherd.pl --serve STATUS_DIR FLAGS PADDING\n"
    unless defined $flags && $serve eq '--serve';
# Numbers, not strings: "|" on two strings would be a bitwise string operation.
my ($write_flags, $trunc, $append) = map { 0 + $_ } split(/,/, $flags);
my $LOCK_FD = 3;

# The worker knows a shepherd by its command line holding its status file (pid reuse, and
# re-adoption after the worker died). A fork has the launcher's argv, and perl rewrites $0
# within the space of the original argv and environment: check once that the longest title
# fits, rather than fail to recognise a live job later.
my $longest = "conductor-shepherd $status_dir/job_" . ('9' x 20) . ".status";
$0 = $longest;
open(my $cmdline_fh, '<', '/proc/self/cmdline') or die "shepherd: /proc/self/cmdline: $!\n";
my $cmdline = do { local $/; <$cmdline_fh> };
close($cmdline_fh);
die "shepherd: argv leaves no room for the process titles\n" if index($cmdline, $longest) != 0;
$0 = "conductor-launcher $status_dir";

open(my $null, '+<', '/dev/null') or die "shepherd: /dev/null: $!\n";
# Shepherds are reaped by the kernel: the launcher never waits, so it never holds zombies.
$SIG{CHLD} = 'IGNORE';
# A write to a gone worker must fail (EPIPE), not kill: that failure is a shepherd's no-go.
$SIG{PIPE} = 'IGNORE';

sub reply {
    my ($line) = @_;
    $line =~ s/\n/ /g;
    syswrite(STDOUT, substr($line, 0, 4000) . "\n");    # within PIPE_BUF: one atomic write
}

# Requests until the worker closes the pipe (it stopped or died): the shepherds live on.
my $replied;    # in a shepherd: whether its reply (its go) went out
my $buf = '';
while (1) {
    my $n = sysread(STDIN, $buf, 65536, length $buf);
    if (!defined $n) { next if $! == 4; last }    # 4 = EINTR on every Linux architecture
    last if $n == 0;
    my $pos = 0;
    while (length($buf) - $pos >= 4) {
        my $len = unpack('N', substr($buf, $pos, 4));
        last if length($buf) - $pos - 4 < $len;
        launch(substr($buf, $pos + 4, $len));
        $pos += 4 + $len;
    }
    substr($buf, 0, $pos, '');
}
exit 0;

sub launch {
    my ($frame) = @_;
    my ($tag, $status_path, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $argc, @rest) =
        split(/\0/, $frame, -1);
    if (!defined $argc || $argc !~ /^[1-9][0-9]*$/ || @rest < $argc) {
        reply(($tag // '') . " error bad launch request");
        return;
    }
    my @cmd = splice(@rest, 0, $argc);
    my $pid = fork();
    if (!defined $pid) {
        reply("$tag error fork: $!");
        return;
    }
    return if $pid;
    # A die must not unwind into the launcher's loop in this process, and must not leave the
    # worker waiting for a reply.
    $replied = 0;
    eval { shepherd($tag, $status_path, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, \@cmd, \@rest) };
    my $msg = $@ || "shepherd returned\n";
    if ($replied) { print STDERR "shepherd $status_path: $msg" } else { reply("$tag error $msg") }
    POSIX::_exit(1);
}

sub shepherd {
    my ($tag, $status_path, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $cmd, $envpairs) = @_;
    # Before the reply, so that a process the worker may kill as this job's always has this title.
    $0 = "conductor-shepherd $status_path";
    # Handlers, not SIG_IGN: the worker signals the whole process group and the shepherd must
    # survive to report; exec resets handlers to the default in the job itself.
    $SIG{$_} = sub { } for qw(TERM INT HUP USR1 USR2 QUIT ALRM CONT);
    # Before the reply as well: the pid the worker learns must already lead the job's group.
    POSIX::setsid() or die "setsid: $!\n";
    my $line = "$tag $$\n";
    my $sent = syswrite(STDOUT, $line);
    POSIX::_exit(0) unless defined $sent && $sent == length $line;    # no go: nothing happened
    $replied = 1;
    # The worker sees EOF on the replies only once every shepherd has let go of them.
    POSIX::dup2(fileno($null), 0);
    POSIX::dup2(fileno($null), 1);
    # An ignored signal would stay ignored in the job after exec.
    $SIG{PIPE} = 'DEFAULT';
    $SIG{CHLD} = 'DEFAULT';

    # 0101 = O_WRONLY|O_CREAT and 01000 = O_TRUNC are the same on every Linux architecture.
    sysopen(my $st, $status_path, 01 | 0100 | 01000, 0600) or die "$status_path: $!\n";
    syswrite($st, "start $$\n");
    # Held until here, the worker's lock tells a restarted worker when every job whose go was
    # given has a status file: only then may it decide that one without never started.
    POSIX::close($LOCK_FD);

    my $fail = sub {
        my ($msg) = @_;
        $msg =~ s/\n/ /g;
        syswrite($st, "error $msg\n");
        POSIX::_exit(1);
    };

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

    my $extra = $mode eq 'append' ? $append : $trunc;
    # NOFOLLOW: a symbolic link planted at the output path must not redirect the job's writes.
    my $open_out = sub {
        my ($path, $what) = @_;
        sysopen(my $fh, $path, $write_flags | $extra, 0644) or $fail->("cannot open $what file '$path': $!");
        # /dev/null is the one non-regular file a job may write to, as users often ask for it.
        $fail->("$what file '$path' is not a regular file") unless -f $fh || $path eq '/dev/null';
        return $fh;
    };

    sysopen(my $stdin_fh, $in, 0) or $fail->("cannot open input file '$in': $!");
    my $out_fh = $open_out->($out, 'output');
    my $err_fh = $err eq $out ? $out_fh : $open_out->($err, 'error');

    open(STDIN, '<&', $stdin_fh) or $fail->("dup stdin: $!");
    open(STDOUT, '>&', $out_fh) or $fail->("dup stdout: $!");
    open(STDERR, '>&', $err_fh) or $fail->("dup stderr: $!");

    my $pid = fork();
    $fail->("fork: $!") unless defined $pid;
    if ($pid == 0) {
        exec { $cmd->[0] } @$cmd;
        syswrite(STDERR, "conductor: cannot execute $cmd->[0]: $!\n");
        POSIX::_exit(127);
    }
    syswrite($st, "child $pid\n");

    my $r;
    do { $r = waitpid($pid, 0) } while ($r != $pid && !($r == -1 && $! != 4));
    $fail->("wait: $!") if $r != $pid;
    my $code = ($? >> 8) & 255;
    my $sig = $? & 127;
    my (undef, undef, $cutime, $cstime) = times();
    syswrite($st, sprintf("exit %d %d %.2f %.2f\n", $code, $sig, $cutime, $cstime));
    close($st);
    POSIX::_exit(0);
}
