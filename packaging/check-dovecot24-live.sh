#!/usr/bin/env bash
# Live check of coid with a running Dovecot 2.4. check-dovecot24.sh only proves that
# Dovecot 2.4 accepts coid's snippets (doveconf, sievec); this proves that they work
# with coid: Dovecot 2.4's dict client talks to coid's dict socket (protocol "H4"),
# and what Delta Chat and COI clients send over IMAP gets the right answers.
#
# In the Debian trixie chroot that check-dovecot24.sh prepares ($COID_TRIXIE_ROOT,
# default /var/tmp/coid-trixie; it is reused, never debootstrapped here), a Dovecot
# 2.4 runs under a config of its own (passwd-file users, maildir in a temp dir in the
# chroot, IMAP and LMTP on 127.0.0.1 high ports, log to a file) plus coid's shipped
# snippets, whose dict socket /run/coid/dict is $root/run/coid/dict on the host. coid
# runs on the host, serving that socket and LMTP on 127.0.0.1, delivering to the
# chroot Dovecot's LMTP; its Delta Chat notify_url and the test Web Push endpoint are
# a stand-in HTTP server on 127.0.0.1. check-dovecot24-live.py then drives IMAP and
# LMTP (what each check proves is in its output and in that file). Only loopback
# traffic. Everything started here is stopped by its PID; /proc in the chroot is
# unmounted if this script mounted it; the temp dir is removed (COID_LIVE_KEEP=1
# keeps it, and its path is printed).
#
# A script of its own rather than a part of check-dovecot24.sh: it needs a built coid
# and runs daemons that need their own cleanup, and it can be rerun alone (about 3 s)
# while working on coid's dict or push code.
#
# Run as root (by .ci/run, after check-dovecot24.sh). Exits non-zero on the first
# failed check, with the logs' tails.
set -euo pipefail
cd "$(dirname "$0")/.."
# Canonical: compared with /proc/PID/root, and cut off paths to get Dovecot's view.
root=$(realpath -m "${COID_TRIXIE_ROOT:-/var/tmp/coid-trixie}")
began=$(date +%s%N)
user=alice@example.org
password=secret

fail() {
  echo "check-dovecot24-live: FAILED: $*" >&2
  exit 1
}
step() { echo "== $*"; }
ok() { echo "   ok: $*"; }

[[ $(id -u) == 0 ]] || fail "must run as root (chroot, mount)"
[[ -e $root/.coid-ready ]] ||
  fail "no Dovecot 2.4 chroot in $root: packaging/check-dovecot24.sh prepares it"
# debootstrap made the device nodes Dovecot opens; bind-mounting /dev is not needed.
for node in null zero urandom; do
  [[ -c $root/dev/$node ]] || fail "$root/dev/$node is not a character device"
done

# ---------------------------------------------------------------- cleanup
work=""
mounted_proc=""
pid_stand_in="" pid_coid="" pid_dovecot=""

# Stops one process this script started: SIGTERM, up to 10 s, then SIGKILL.
stop() {
  local name=$1 pid=$2 i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]] || break
    sleep 0.1
  done
  if [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]]; then
    echo "check-dovecot24-live: $name ($pid) did not stop in 10 s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Processes whose root directory is the chroot (Dovecot's children, until they exit).
in_chroot() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$root" ]] && echo "${p#/proc/}"
  done
  return 0
}

tail_logs() {
  local f
  for f in "$work/dovecot.out" "$work/dovecot.log" "$work/host/coid.log" "$work/host/stand-in.log"; do
    [[ -s $f ]] || continue
    echo "--- ${f#"$work"/} (last 40 lines)" >&2
    tail -n 40 "$f" | sed 's/\x1b\[[0-9;]*m//g' >&2
  done
}

cleanup() {
  local status=$? i left
  set +e
  stop Dovecot "$pid_dovecot"
  stop coid "$pid_coid"
  stop stand-in "$pid_stand_in"
  for ((i = 0; i < 100; i++)); do
    left=$(in_chroot)
    [[ -z $left ]] && break
    sleep 0.1
  done
  if [[ -n $left ]]; then
    echo "check-dovecot24-live: processes still in $root:" >&2
    ps -o pid,user,args -p "$(paste -sd, <<<"$left")" >&2
    status=1
  fi
  ((status == 0)) || tail_logs
  [[ -z $mounted_proc ]] || umount "$root/proc" || status=1
  rm -rf "$root/run/coid"
  if [[ -n $work && ${COID_LIVE_KEEP:-} == 1 ]]; then
    echo "check-dovecot24-live: kept $work"
  elif [[ -n $work ]]; then
    rm -rf "$work"
  fi
  local ms=$((($(date +%s%N) - began) / 1000000))
  echo "check-dovecot24-live: $( ((status == 0)) && echo passed || echo FAILED)" \
    "in $((ms / 1000)).$((ms % 1000 / 100)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 15 s for a TCP listener on 127.0.0.1:$2, while process $3 lives.
wait_listen() {
  local name=$1 port=$2 pid=$3 i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || fail "$name exited during startup"
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$name does not listen on 127.0.0.1:$port after 15 s"
}

# ---------------------------------------------------------------- coid binary
step "coid"
# A no-op when check-deb.sh has just built it (.ci/run); never a stale binary.
cargo build --release --locked --quiet
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$PWD/$target_dir
coid=$target_dir/release/coid
[[ -x $coid ]] || fail "no $coid after cargo build --release"
ok "$coid"

# ---------------------------------------------------------------- chroot
step "Dovecot 2.4 in $root"
if ! mountpoint -q "$root/proc"; then
  mount -t proc proc "$root/proc" || fail "cannot mount proc on $root/proc"
  mounted_proc=1
fi
# coid's files, laid out as check-dovecot24.sh installs them (the package's layout).
install -d "$root/etc/coid/dovecot/2.4" "$root/usr/lib/coid/sieve-execute"
install -m 0644 conf.d/dovecot/coid.sieve conf.d/dovecot/coid-seen.sieve "$root/etc/coid/dovecot/"
install -m 0644 conf.d/dovecot/2.4/*.conf "$root/etc/coid/dovecot/2.4/"
install -m 0755 conf.d/dovecot/coid-seen-move "$root/usr/lib/coid/sieve-execute/"
chroot "$root" getent group coid >/dev/null || chroot "$root" groupadd --system coid
# The mail user (the package made dovecot and dovenull).
chroot "$root" getent passwd vmail >/dev/null ||
  chroot "$root" useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin vmail
uid=$(chroot "$root" id -u vmail)
gid=$(chroot "$root" id -g vmail)
coid_gid=$(chroot "$root" getent group coid | cut -d: -f3)
dovecot_gid=$(chroot "$root" getent group dovecot | cut -d: -f3)

work=$(mktemp -d "$root/tmp/coid-live.XXXXXX")
chmod 0755 "$work"
inside=${work#"$root"} # the same directory as Dovecot sees it
install -d -m 0700 "$work/host"
install -d -o "$uid" -g "$gid" "$work/mail"
maildir="$work/mail/${user%@*}/Maildir"
read -r imap_port lmtp_port coid_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# passwd-file: user:{PLAIN}password:uid:gid::home:: (read by auth, which runs as dovecot).
printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$user" "$password" "$uid" "$gid" \
  "$inside/mail/${user%@*}" >"$work/users"
chown "root:$dovecot_gid" "$work/users"
chmod 0640 "$work/users"
cat >"$work/dovecot.conf" <<EOF
# check-dovecot24-live.sh's Dovecot 2.4: self-contained (no /etc/dovecot), plus coid.
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
instance_name = coid-live
base_dir = $inside/run
state_dir = $inside/state
log_path = $inside/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain
first_valid_uid = $uid
passdb passwd-file {
  passwd_file_path = $inside/users
}
userdb passwd-file {
  passwd_file_path = $inside/users
}
mail_driver = maildir
mail_path = %{home}/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    port = $lmtp_port
  }
}
# coid's snippets as shipped: dict socket /run/coid/dict, COI WEBPUSH XDELTAPUSH, Sieve.
!include /etc/coid/dovecot/2.4/coid.conf
EOF
errors=$(chroot "$root" doveconf -c "$inside/dovecot.conf" -n 2>&1 >"$work/doveconf-n") ||
  fail "doveconf -n failed: $errors"
[[ -z $errors ]] || fail "doveconf -n complained: $errors"
grep -qF "socket_path = /run/coid/dict" "$work/doveconf-n" ||
  fail "doveconf -n lacks the dict socket /run/coid/dict"
# The mail user cannot write .svbin next to the root-owned scripts: compile them now.
for script in coid.sieve coid-seen.sieve; do
  chroot "$root" sievec -c "$inside/dovecot.conf" "/etc/coid/dovecot/$script" ||
    fail "sievec $script failed"
done
ok "doveconf -n accepts the test config with coid's snippets; sievec compiled the scripts"

# ---------------------------------------------------------------- stand-in, coid
step "coid on the host, serving $root/run/coid/dict"
python3 packaging/check-dovecot24-live.py stand-in "$work/host/stand-in.port" \
  "$work/host/posts.jsonl" 2>"$work/host/stand-in.log" &
pid_stand_in=$!
for ((i = 0; i < 100; i++)); do
  [[ -s $work/host/stand-in.port ]] && break
  kill -0 "$pid_stand_in" 2>/dev/null || fail "the HTTP stand-in exited during startup"
  sleep 0.1
done
[[ -s $work/host/stand-in.port ]] || fail "the HTTP stand-in did not start in 10 s"
stand_in="http://127.0.0.1:$(cat "$work/host/stand-in.port")"

# As production: /run/coid is group coid 0750, so only the mail processes, which the
# snippet puts in group coid (mail_access_groups), reach the socket (mode 0666 here,
# since the host has no group coid for coid to give it).
rm -rf "$root/run/coid"
install -d -m 0750 -o root -g "$coid_gid" "$root/run/coid"
cat >"$work/host/coid.toml" <<EOF
[lmtp]
tcp = ["127.0.0.1:$coid_port"]
unix_socket = ""
unix_socket_group = ""
[state]
dir = "$work/host/state"
[delivery]
backend = "dovecot"
[delivery.dovecot]
lmtp = "127.0.0.1:$lmtp_port"
hierarchy_separator = "/"
reply_timeout_secs = 30
[dict]
socket = "$root/run/coid/dict"
socket_mode = "0666"
[deltachat]
notify_url = "$stand_in/notify"
backoff_first_secs = 1
backoff_max_secs = 2
[push]
allow_private_endpoints = true
[service]
user = ""
shutdown_grace_secs = 5
[metrics]
listen = ""
EOF
errors=$("$coid" check-config --config "$work/host/coid.toml" 2>&1) ||
  fail "coid check-config refused the test config: $errors"
COID_LOG=debug NO_COLOR=1 "$coid" serve --config "$work/host/coid.toml" \
  >"$work/host/coid.log" 2>&1 &
pid_coid=$!
wait_listen coid "$coid_port" "$pid_coid"
[[ -S $root/run/coid/dict ]] || fail "coid listens on LMTP but $root/run/coid/dict is no socket"
ok "coid $("$coid" --version | cut -d' ' -f2) serves LMTP 127.0.0.1:$coid_port and the dict socket"

step "Dovecot"
chroot "$root" /usr/sbin/dovecot -F -c "$inside/dovecot.conf" >"$work/dovecot.out" 2>&1 &
pid_dovecot=$! # chroot execs dovecot: this is Dovecot's master
wait_listen "Dovecot (IMAP)" "$imap_port" "$pid_dovecot"
wait_listen "Dovecot (LMTP)" "$lmtp_port" "$pid_dovecot"
ok "$(sed -n 's/.*\(Dovecot v[^ ]*\).*starting up.*/\1/p' "$work/dovecot.log" | head -1)" \
  "in the chroot: IMAP 127.0.0.1:$imap_port, LMTP 127.0.0.1:$lmtp_port"

# ---------------------------------------------------------------- the checks
step "IMAP and LMTP checks"
python3 packaging/check-dovecot24-live.py check --imap "$imap_port" --coid-lmtp "$coid_port" \
  --user "$user" --password "$password" --coid "$coid" \
  --coid-config "$work/host/coid.toml" --coid-log "$work/host/coid.log" \
  --maildir "$maildir" --record "$work/host/posts.jsonl" --stand-in "$stand_in" || fail "a check failed (above)"

# Dovecot and coid said nothing wrong besides what the checks provoked: Dovecot logs
# each SETMETADATA that coid refused as an Error with coid's reason (the client only
# gets NO). Exactly those: 3 bad tokens and 1 read-only entry.
step "logs"
refused='Dict (private|shared) transaction commit failed: dict-server returned failure: '
refused+='(device token with a byte outside printable ASCII|/shared/vendor/deltachat/maxsmtprecipients is read-only)'
count=$(grep -cE "$refused" "$work/dovecot.log" || true)
((count == 4)) || fail "Dovecot logged $count refusals by coid, want 4 (3 tokens, 1 read-only entry)"
dovecot_bad=$(grep -E ': (Warning|Error|Fatal|Panic):' "$work/dovecot.log" | grep -vE "$refused" || true)
[[ -z $dovecot_bad ]] || fail "Dovecot logged:"$'\n'"$dovecot_bad"
coid_bad=$(sed 's/\x1b\[[0-9;]*m//g' "$work/host/coid.log" | grep -E ' (WARN|ERROR) ' |
  grep -v 'running as root' || true)
[[ -z $coid_bad ]] || fail "coid logged:"$'\n'"$coid_bad"
ok "Dovecot's log: coid's 4 refusals and no other warning or error; coid's: none"
