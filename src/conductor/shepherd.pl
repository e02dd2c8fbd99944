# The job shepherd: the small process between a worker and a job's script.
#
# Why it exists: the job must outlive its worker (a restart re-adopts it), so the one process
# that learns the script's exact wait status must be the job's own, not the worker. Perl is
# used because it starts in ~2 ms and is on every Debian system (perl-base is essential);
# a Python interpreter would add 10-40 ms to every job's start.
#
# Arguments: STATUS_FILE UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE -- COMMAND...
# (UID empty: do not change user). Its environment is exactly the job's.
# It waits for EOF on stdin (the worker closes the pipe once the CPU affinity is set), drops
# privileges, enters CWD, opens the output files as the job's user, runs COMMAND as its child
# and writes "exit CODE SIGNAL" to STATUS_FILE, which it opened before dropping privileges.
use strict;
use warnings;
use POSIX ();
use Fcntl qw(O_WRONLY O_CREAT O_TRUNC O_APPEND O_RDONLY O_NOFOLLOW);

my ($status_path, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $sep, @cmd) = @ARGV;
die "shepherd: bad arguments\n" unless defined $sep && $sep eq '--' && @cmd;

sysopen(my $st, $status_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) or die "shepherd: $status_path: $!\n";
syswrite($st, "start $$\n");

sub fail {
    my ($msg) = @_;
    $msg =~ s/\n/ /g;
    syswrite($st, "error $msg\n");
    POSIX::_exit(1);
}

# Handlers, not SIG_IGN: the worker signals the whole process group and the shepherd must
# survive to report; exec resets handlers to the default in the job itself.
$SIG{$_} = sub { } for qw(TERM INT HUP USR1 USR2 QUIT ALRM CONT);

my $buf;
1 while sysread(STDIN, $buf, 4096);

if ($uid ne '') {
    my @gids = grep { length } split(/,/, $groups);
    $) = join(' ', $gid, $gid, @gids);
    fail("setgroups/setegid to $gid: $!") if (split(/ /, $)))[0] != $gid;
    $( = $gid;
    POSIX::setgid($gid) or fail("setgid $gid: $!");
    POSIX::setuid($uid) or fail("setuid $uid: $!");
    fail("could not drop privileges to uid $uid") if $< != $uid || $> != $uid;
}

chdir($cwd) or fail("working directory '$cwd' is not usable: $!");

my $append = $mode eq 'append' ? O_APPEND : O_TRUNC;
# O_NOFOLLOW: a symbolic link planted at the output path must not redirect the job's writes.
sub open_out {
    my ($path, $what) = @_;
    sysopen(my $fh, $path, O_WRONLY | O_CREAT | O_NOFOLLOW | $append, 0644)
        or fail("cannot open $what file '$path': $!");
    fail("$what file '$path' is not a regular file") unless -f $fh;
    return $fh;
}

sysopen(my $stdin_fh, $in, O_RDONLY) or fail("cannot open input file '$in': $!");
my $out_fh = open_out($out, 'output');
my $err_fh = $err eq $out ? $out_fh : open_out($err, 'error');

open(STDIN, '<&', $stdin_fh) or fail("dup stdin: $!");
open(STDOUT, '>&', $out_fh) or fail("dup stdout: $!");
open(STDERR, '>&', $err_fh) or fail("dup stderr: $!");

my $pid = fork();
fail("fork: $!") unless defined $pid;
if ($pid == 0) {
    { no warnings 'exec'; exec { $cmd[0] } @cmd; }
    print STDERR "conductor: cannot execute $cmd[0]: $!\n";
    POSIX::_exit(127);
}
syswrite($st, "child $pid\n");

my $r;
do { $r = waitpid($pid, 0) } while ($r != $pid);
my $code = ($? >> 8) & 255;
my $sig = $? & 127;
syswrite($st, "exit $code $sig\n");
close($st);
POSIX::_exit(0);
