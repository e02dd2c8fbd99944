# The job shepherd: the small process between a worker and a job's script.
#
# Why it exists: the job must outlive its worker (a restart re-adopts it), so the one process
# that learns the script's exact wait status must be the job's own, not the worker. Perl is
# used because it starts in ~2 ms and is on every Debian system (perl-base is essential);
# a Python interpreter would add 10-40 ms to every job's start. For the same reason it loads
# no module at all (POSIX alone costs more than the rest of the start): the open(2) flags come
# from the worker, which knows this platform's values.
#
# Arguments: STATUS_FILE FLAGS UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE -- COMMAND...
# FLAGS is "WRITE_CREATE_NOFOLLOW,TRUNC,APPEND"; UID empty means: do not change user.
# Its own environment is a fixed minimal one; the job's comes on stdin.
# It waits for EOF on stdin (the worker closes the pipe once the CPU affinity is set), drops
# privileges, enters CWD, opens the output files as the job's user, runs COMMAND as its child
# and writes "exit CODE SIGNAL" to STATUS_FILE, which it opened before dropping privileges.

my ($status_path, $flags, $uid, $gid, $groups, $cwd, $in, $out, $err, $mode, $sep, @cmd) = @ARGV;
die "shepherd: bad arguments\n" unless defined $sep && $sep eq '--' && @cmd;
# Numbers, not strings: "|" on two strings would be a bitwise string operation.
my ($write_flags, $trunc, $append) = map { 0 + $_ } split(/,/, $flags);

# 0101 = O_WRONLY|O_CREAT and 01000 = O_TRUNC are the same on every Linux architecture.
sysopen(my $st, $status_path, 01 | 0100 | 01000, 0600) or die "shepherd: $status_path: $!\n";
syswrite($st, "start $$\n");

sub fail {
    my ($msg) = @_;
    $msg =~ s/\n/ /g;
    syswrite($st, "error $msg\n");
    exit 1;
}

# Handlers, not SIG_IGN: the worker signals the whole process group and the shepherd must
# survive to report; exec resets handlers to the default in the job itself.
$SIG{$_} = sub { } for qw(TERM INT HUP USR1 USR2 QUIT ALRM CONT);

# The job's environment arrives on stdin ("NAME=value" pairs separated by NUL); EOF is the go.
my $envdata = '';
while (1) {
    my $n = sysread(STDIN, my $chunk, 65536);
    if (!defined $n) { next if $! == 4; last }    # 4 = EINTR on every Linux architecture
    last if $n == 0;
    $envdata .= $chunk;
}

if ($uid ne '') {
    my @gids = grep { length } split(/,/, $groups);
    $) = join(' ', $gid, $gid, @gids);
    fail("could not set groups to $gid $groups: $!") if (split(/ /, $)))[0] != $gid;
    $( = $gid;
    fail("could not set gid $gid: $!") if $( != $gid;
    $< = $> = $uid;
    fail("could not drop privileges to uid $uid: $!") if $< != $uid || $> != $uid;
}

# Only now, as the job's user: variables such as LD_PRELOAD must not act for root.
%ENV = ();
for my $pair (split(/\0/, $envdata)) {
    my ($name, $value) = split(/=/, $pair, 2);
    $ENV{$name} = defined $value ? $value : '' if length $name;
}

chdir($cwd) or fail("working directory '$cwd' is not usable: $!");

my $extra = $mode eq 'append' ? $append : $trunc;
# NOFOLLOW: a symbolic link planted at the output path must not redirect the job's writes.
sub open_out {
    my ($path, $what) = @_;
    sysopen(my $fh, $path, $write_flags | $extra, 0644) or fail("cannot open $what file '$path': $!");
    # /dev/null is the one non-regular file a job may write to, as users often ask for it.
    fail("$what file '$path' is not a regular file") unless -f $fh || $path eq '/dev/null';
    return $fh;
}

sysopen(my $stdin_fh, $in, 0) or fail("cannot open input file '$in': $!");
my $out_fh = open_out($out, 'output');
my $err_fh = $err eq $out ? $out_fh : open_out($err, 'error');

open(STDIN, '<&', $stdin_fh) or fail("dup stdin: $!");
open(STDOUT, '>&', $out_fh) or fail("dup stdout: $!");
open(STDERR, '>&', $err_fh) or fail("dup stderr: $!");

my $pid = fork();
fail("fork: $!") unless defined $pid;
if ($pid == 0) {
    exec { $cmd[0] } @cmd;
    print STDERR "conductor: cannot execute $cmd[0]: $!\n";
    exit 127;
}
syswrite($st, "child $pid\n");

my $r;
do { $r = waitpid($pid, 0) } while ($r != $pid);
my $code = ($? >> 8) & 255;
my $sig = $? & 127;
syswrite($st, "exit $code $sig\n");
close($st);
exit 0;
