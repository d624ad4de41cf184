#!/usr/bin/env bash
# The operator's path, on a booted Debian: the README's install steps, run literally
# in a Debian 12 (bookworm; or 13, trixie, with Dovecot 2.4: first argument) system
# container booted with systemd as PID 1 (systemd-nspawn -b), with Debian's postfix,
# dovecot-imapd, dovecot-lmtpd, dovecot-sieve and coid's .deb, on a private network:
# the container has only its own loopback, nothing leaves the machine.
#
# The README's commands: every fenced block preceded by "<!-- booted: NAME -->" (or
# "<!-- booted: NAME RELEASE -->", for one release only) is run inside the container
# as it stands, in the order this script asks for them, so the README and this test
# cannot drift apart. What an operator's host already had before coid (Postfix with a
# virtual domain delivering to Dovecot's LMTP, system users, Maildir) is set up by
# this script first; coid.toml gets the edits an operator makes (vapid_subject) plus
# two for the test (push targets on loopback, served by a stand-in in the container).
#
# Checks, each with what proves it (details in the output):
#   a minimal host: procps (kill, pgrep) and curl are removed from the container
#     first, so nothing of coid's may need them (reload, the README's verify block);
#   install: dpkg -i enables and starts nothing; what postinst makes (the user coid,
#     /var/lib/coid, /var/spool/postfix/coid, the compiled Sieve scripts), conffiles,
#     the man page, `systemd-analyze verify` of the units; the three edits, the start,
#     the verify block (`coid health`, no curl); local users need Dovecot's
#     auth_username_format (friction 1: Dovecot's LMTP refuses bob@<host> before, coid
#     delivers after);
#   coid doctor: exit 0 and --json "ok" on the host as the guide leaves it;
#     --send-test to a virtual and a local user finds and removes its message;
#     --network reaches notify_url (the stand-in, on loopback); then
#     one thing broken at a time (Postfix transports, recipient limit; Dovecot's
#     METADATA, capabilities, attribute dict, sieve plugin, local users' names, mbox
#     with the seen filter, a stale .svbin, the LMTP listener; coid's socket mode,
#     state dir owner, coid stopped): it names each with its fix, exits 1 or 2;
#   a failed start (bad coid.toml, exit 78): every line of the reason is in
#     `journalctl -p err -u coid`, none at a lower priority;
#   METADATA: COI settings, Delta Chat's token registration and server entries, a Web
#     Push subscription, over IMAP through Dovecot to coid's dict;
#   mail: plain and chat mail to a virtual and a local user through Postfix -> coid
#     -> Dovecot (Postfix's log: relay coid/lmtp; coid's: delivered; Dovecot: the
#     folder and $Chat), and Delta Chat notifications to the stand-in;
#   reload: an LMTP session open across "systemctl reload coid" delivers, same PID,
#     with no kill(1) on the host (ExecReload is `coid reload $MAINPID`); a refused
#     reload (bad coid.toml) keeps the running config, and every line of its reason
#     is in `journalctl -p err -u coid`;
#   watchdog: SIGSTOP on coid: systemd's WatchdogSec kills and restarts it;
#   stop: a message in flight (inside DATA) is delivered; mail while coid is stopped
#     is deferred, never bounced, and delivered once coid is back;
#   reboot: Dovecot up before coid starts, coid ready before Postfix starts, and the
#     reverse at shutdown;
#   socket activation: the README's order (friction 3: enabling the socket while coid
#     runs fails); systemd holds the socket and starts coid on the next delivery;
#   upgrade (a rebuilt .deb with a higher version): state, COI settings and the VAPID
#     key stay, coid.service is restarted and coid.socket is not (same invocation, the
#     same socket file; connects every millisecond during the upgrade all succeed);
#   the dpkg trigger on sievec: activated, it compiles coid's Sieve scripts again;
#   the way back (friction 4, and mailbox_transport back to empty, Postfix's local):
#     nothing of coid listens, mail goes straight to Dovecot;
#   remove keeps the state, purge removes it.
#
# Needs root, systemd-nspawn (package systemd-container; installed if missing),
# debootstrap, and Debian's mirror for the first run. The debootstrapped root with
# the packages is cached in /var/tmp/coid-booted-RELEASE-HASH (HASH of the release
# and the package list; COID_BOOTED_CACHE overrides) and used read-only under an
# overlay, so later runs take no download (delete the directory to pick up Debian's
# updates). The .deb is target/debian/coid_*.deb (packaging/check-deb.sh builds it;
# run here if there is none).
#
# The container is driven from outside with nsenter into its init's namespaces, which
# works whether or not the host runs systemd; machinectl and systemd-run -M need
# systemd-machined, i.e. systemd as the host's PID 1. Without it (a plain VM or a CI
# container) systemd-nspawn runs with --register=no --keep-unit in cgroups made here.
#
# Exit codes: 0 passed; 1 a check failed; 77 this machine cannot run the container
# (no systemd-nspawn, no root, no overlayfs or namespaces): .ci/run decides whether
# that may pass. COID_BOOTED_KEEP=1 keeps the overlay's upper directory and logs;
# COID_BOOTED_HOLD=1 keeps the container running after a failure until a file is
# removed (the message says which), to look inside with nsenter.
# Everything this script starts is stopped by its PID, and it unmounts what it mounts.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS

release=${1:-bookworm}
# Debian 12 runs Postfix as postfix@-.service (postfix.service is a wrapper); Debian 13
# as postfix.service itself. coid.service is ordered before both.
case $release in
bookworm) dovecot_major=2.3 postfix_unit=postfix@-.service ;;
trixie) dovecot_major=2.4 postfix_unit=postfix.service ;;
*)
  echo "usage: $0 [bookworm|trixie]" >&2
  exit 2
  ;;
esac
SKIP=77
mirror=http://deb.debian.org/debian
# What the container gets beyond minbase: systemd as init with D-Bus, the mail host,
# and the tools the checks use inside (python3: IMAP and LMTP clients; iproute2: ss).
# procps and curl are in the cached root only so that its hash stays; each run
# removes them from the booted container (a minimal host has neither).
include=systemd,systemd-sysv,dbus
packages=(postfix dovecot-imapd dovecot-lmtpd dovecot-sieve adduser python3 iproute2 procps curl)
# Bump when the preparation below changes in a way the package list does not show.
prepare_version=1
key=$(printf '%s\n' "$release" "$mirror" "$include" "${packages[@]}" "$prepare_version" |
  sha256sum | cut -c1-12)
cache=${COID_BOOTED_CACHE:-/var/tmp/coid-booted-$release-$key}
machine=coid-booted-$release-$$
user=alice@example.net
password=secret
local_user=bob
host=mail.example.org
run_id=$(date +%s)-$$

fail() {
  echo "check-booted: FAILED: $*" >&2
  exit 1
}
skip() {
  echo "check-booted: CANNOT RUN HERE: $*" >&2
  echo "check-booted: exit $SKIP: this machine cannot boot the test container;" \
    ".ci/run fails on this unless COID_CI_ALLOW_NO_CONTAINERS=1" >&2
  exit $SKIP
}
step() { echo "== $* ($((SECONDS - began)) s)"; }
ok() { echo "   ok: $*"; }
note() { echo "   $*"; }

# ---------------------------------------------------------------- can this machine?
[[ $(id -u) == 0 ]] || skip "must run as root (debootstrap, mount, systemd-nspawn)"
export DEBIAN_FRONTEND=noninteractive
need=()
type -P systemd-nspawn >/dev/null || need+=(systemd-container)
type -P debootstrap >/dev/null || need+=(debootstrap)
type -P nsenter >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  echo "check-booted: installing ${need[*]}"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }; then
    skip "cannot install ${need[*]} (apt-get failed)"
  fi
fi
type -P systemd-nspawn >/dev/null || skip "no systemd-nspawn (package systemd-container)"
type -P debootstrap >/dev/null || skip "no debootstrap"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
  grep -qw overlay /proc/filesystems || skip "the kernel has no overlayfs"
unshare --mount --pid --uts --ipc --net --fork true 2>/dev/null ||
  skip "cannot create namespaces (unshare --mount --pid --uts --ipc --net failed)"
[[ -w /sys/fs/cgroup ]] || [[ -w /sys/fs/cgroup/unified ]] || [[ -w /sys/fs/cgroup/systemd ]] ||
  skip "/sys/fs/cgroup is not writable"

# The .deb to test, and the version it must install.
debs=${CARGO_TARGET_DIR:-target}/debian
newest_deb() {
  find "$debs" -maxdepth 1 -name 'coid_*_amd64.deb' -printf '%T@ %p\n' 2>/dev/null |
    sort -rn | head -n 1 | cut -d' ' -f2-
}
deb=$(newest_deb || true)
if [[ -z $deb ]]; then
  step "no $debs/coid_*.deb: building it with packaging/check-deb.sh"
  packaging/check-deb.sh
  deb=$(newest_deb)
fi
deb_version=$(dpkg-deb -f "$deb" Version)

# ---------------------------------------------------------------- the cached root
# One run at a time prepares a cache; runs that find it ready only read it.
prepare_cache() {
  local tmp=$cache.tmp
  rm -rf --one-file-system "$tmp"
  debootstrap --variant=minbase --include="$include" "$release" "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
    fail "debootstrap $release failed: $(tail -n 5 "$tmp.log")"
  # No daemon may start while packages install (this is a chroot, not yet booted).
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  printf '%s\n' "postfix postfix/main_mailer_type select Internet Site" \
    "postfix postfix/mailname string $host" | chroot "$tmp" debconf-set-selections
  mount -t proc proc "$tmp/proc"
  local rc=0
  { chroot "$tmp" apt-get update -qq &&
    chroot "$tmp" apt-get install -y -qq --no-install-recommends "${packages[@]}"; } \
    >>"$tmp.log" 2>&1 || rc=$?
  umount "$tmp/proc"
  ((rc == 0)) || fail "apt-get install in the $release root failed: $(tail -n 5 "$tmp.log")"
  rm -f "$tmp/usr/sbin/policy-rc.d"
  chroot "$tmp" apt-get clean
  # A fixed machine id, so the journal of the boot before a reboot can be read; the
  # host name the mail host answers to.
  chroot "$tmp" systemd-machine-id-setup >/dev/null
  echo mail >"$tmp/etc/hostname"
  # The container has no console to log in on.
  chroot "$tmp" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1
  touch "$tmp/.coid-ready"
  rm -f "$tmp.log"
  mv "$tmp" "$cache"
}

step "the $release root: $cache"
t0=$SECONDS
exec 9>"$cache.lock"
flock 9
if [[ ! -e $cache/.coid-ready ]]; then
  rm -rf --one-file-system "$cache"
  note "not cached: debootstrap $release minbase from $mirror and ${packages[*]}"
  prepare_cache
  cache_note="prepared in $((SECONDS - t0)) s"
else
  cache_note="cached"
fi
flock -u 9
exec 9>&-
ok "$release root $cache_note ($(du -sh "$cache" | cut -f1))"
time_cache=$((SECONDS - t0))

# ---------------------------------------------------------------- the container
work=$(mktemp -d /var/tmp/coid-booted-run.XXXXXX)
root=$work/root
mkdir "$root" "$work/upper" "$work/overlay-work"
nspawn_pid="" leader="" mounted="" cgroups=()

# Stops the container: poweroff inside, then SIGTERM to systemd-nspawn (it halts the
# container), then SIGKILL to systemd-nspawn and the container's init, each started
# here. Then unmounts the overlay and removes the cgroups made for the container.
cleanup() {
  local rc=$? i cg
  set +e
  if ((rc != 0)) && [[ ${COID_BOOTED_HOLD:-} == 1 && -n $leader ]]; then
    touch "$work/hold"
    echo "check-booted: holding the container for a look: nsenter -t $leader -a;" \
      "rm $work/hold to tear it down" >&2
    while [[ -e $work/hold ]]; do sleep 1; done
  fi
  if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    [[ -n $leader ]] && ct systemctl poweroff --no-block >/dev/null 2>&1
    for ((i = 0; i < 300; i++)); do
      kill -0 "$nspawn_pid" 2>/dev/null || break
      ((i == 150)) && kill -TERM "$nspawn_pid" 2>/dev/null
      sleep 0.1
    done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
      echo "check-booted: systemd-nspawn ($nspawn_pid) did not stop in 30 s: SIGKILL" >&2
      [[ -n $leader ]] && kill -KILL "$leader" 2>/dev/null
      kill -KILL "$nspawn_pid" 2>/dev/null
    fi
    wait "$nspawn_pid" 2>/dev/null
  fi
  if [[ -n $mounted ]]; then
    umount "$root" || umount -l "$root"
  fi
  for cg in "${cgroups[@]}"; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ -d $cg ]] && echo "check-booted: could not remove cgroup $cg" >&2
  done
  # systemd-nspawn's own leftovers on the host (its /run is not a tmpfs here).
  rmdir "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
  if ((rc != 0)) && [[ -f $work/nspawn.log ]]; then
    echo "check-booted: the container's console (last lines):" >&2
    tail -n 15 "$work/nspawn.log" >&2
  fi
  if [[ ${COID_BOOTED_KEEP:-} == 1 ]]; then
    echo "check-booted: kept $work (upper: the container's changes)" >&2
  elif ! mountpoint -q "$root"; then
    rm -rf --one-file-system "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount -t overlay overlay \
  -o "lowerdir=$cache,upperdir=$work/upper,workdir=$work/overlay-work" "$root" ||
  skip "cannot mount an overlay of $cache"
mounted=yes

# A command inside the container: all of its init's namespaces, a clean environment.
ct() {
  nsenter --target "$leader" --all -- /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
# Waits until the container's systemd finished booting ("running"); sets $leader.
wait_booted() {
  local old=${1:-} deadline=$((SECONDS + 180)) state=""
  leader=""
  while ((SECONDS < deadline)); do
    kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited"
    if [[ -z $leader ]]; then
      leader=$(ps --ppid "$nspawn_pid" -o pid=,comm= | awk '$2 == "systemd" { print $1 }' || true)
      [[ -n $leader && $leader != "$old" ]] || leader=""
    fi
    if [[ -n $leader ]]; then
      state=$(timeout 60 nsenter --target "$leader" --all -- /usr/bin/env -i \
        PATH=/usr/bin:/bin systemctl is-system-running --wait 2>/dev/null) || true
      case $state in
      running) return 0 ;;
      degraded) fail "the container booted degraded: $(ct systemctl --failed --no-legend)" ;;
      esac
    fi
    sleep 0.5
  done
  fail "the container did not finish booting in 180 s (state: ${state:-no init})"
}
# Boots the container in the background, its systemd-nspawn in a cgroup of its own.
boot() {
  if [[ -d /run/systemd/system ]]; then
    # The host runs systemd: a scope with delegation for systemd-nspawn.
    systemd-run --quiet --scope --unit="$machine" -p Delegate=yes \
      systemd-nspawn "${nspawn_args[@]}" >>"$work/nspawn.log" 2>&1 &
    nspawn_pid=$!
  else
    # No systemd on the host (no machined, no D-Bus): --register=no --keep-unit, and
    # a cgroup made here in each hierarchy systemd uses, so that the container's
    # cgroups sit below it (and two runs never share one).
    local h
    cgroups=()
    if [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]]; then
      cgroups=(/sys/fs/cgroup/"$machine")
    else # hybrid or legacy: systemd's named hierarchy and the unified one, if there
      for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
        [[ -e $h/cgroup.procs ]] && cgroups+=("$h/$machine")
      done
    fi
    ((${#cgroups[@]})) || skip "no cgroup hierarchy for systemd under /sys/fs/cgroup"
    for h in "${cgroups[@]}"; do [[ -d $h ]] || mkdir "$h" || skip "cannot create cgroup $h"; done
    (
      for h in "${cgroups[@]}"; do echo "$BASHPID" >"$h/cgroup.procs"; done
      exec systemd-nspawn "${nspawn_args[@]}"
    ) >>"$work/nspawn.log" 2>&1 &
    nspawn_pid=$!
  fi
}
nspawn_args=(--quiet --directory="$root" --boot --private-network --machine="$machine"
  --register=no --keep-unit --console=passive --link-journal=no)
# systemd 256 and later boot only on cgroup v2; this also works for 252.
export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1

# Sends mail inside the container with Postfix's sendmail: $1 chat|plain, $2 subject,
# then the recipients.
send() {
  local kind=$1 subject=$2
  shift 2
  {
    printf 'From: sender@example.org\nTo: %s\nSubject: %s\n' "$1" "$subject"
    printf 'Message-ID: <%s.%s@example.org>\nDate: %s\n' "$run_id" "$RANDOM$RANDOM" "$(date -R)"
    [[ $kind == chat ]] && printf 'Chat-Version: 1.0\n'
    printf '\nhello from check-booted\n'
  } | ct sendmail -i -f sender@example.org -- "$@"
}
# The number of messages with this subject in a user's mailbox (Dovecot's view).
count() { # user mailbox subject
  ct doveadm search -u "$1" mailbox "$2" header subject "$3" 2>/dev/null | wc -l
}
# Waits up to 30 s until a user's mailbox holds a message with this subject.
wait_mail() { # user mailbox subject
  local i
  for ((i = 0; i < 300; i++)); do
    (($(count "$@") > 0)) && return 0
    sleep 0.1
  done
  fail "no message '$3' in $1's $2 after 30 s; queue: $(ct postqueue -p | tail -n 5)"
}
# A point in time for journal_since (the container shares the host's clock). Not a
# journal cursor: journalctl 252 with --after-cursor and a match (-t, -u) shows nothing.
cursor() { date +%s.%6N; }
journal_since() { # cursor, journalctl options...
  local c=$1
  shift
  ct journalctl --no-pager -q --since="@$c" "$@"
}
unit() { ct systemctl show -P "$2" "$1"; } # unit property
# Waits up to 10 s until the journal after the cursor has N lines matching the
# pattern (journalctl options after it); prints the matching lines. Postfix logs a
# delivery after Dovecot stored it, so a message found in a mailbox is not enough.
wait_journal() { # cursor count pattern options...
  local c=$1 n=$2 pattern=$3 i lines=""
  shift 3
  for ((i = 0; i < 100; i++)); do
    lines=$(grep -E -- "$pattern" <<<"$(journal_since "$c" "$@")" || true)
    (($(grep -c . <<<"$lines" || true) >= n)) && break
    sleep 0.1
  done
  printf '%s\n' "$lines"
  (($(grep -c . <<<"$lines" || true) >= n))
}
# The README's fenced block after "<!-- booted: NAME -->" (or "... NAME RELEASE -->"),
# without its indentation; fails unless exactly one block matches.
readme_block() {
  awk -v want="$1" -v rel="$release" '
    mode == 0 && match($0, /<!-- booted: [^>]* -->/) {
      n = split(substr($0, RSTART + 13, RLENGTH - 17), w, " ")
      if (w[1] == want && (n == 1 || w[2] == rel)) { mode = 1; hits++ }
      next
    }
    mode == 1 {
      if (!match($0, /^ *```/)) { bad = 1; exit }
      fence = substr($0, 1, RLENGTH); indent = RLENGTH - 3; mode = 2; next
    }
    mode == 2 {
      line = $0; sub(/[ \t]+$/, "", line)
      if (line == fence) { mode = 0; next }
      print substr($0, indent + 1)
    }
    END { if (bad || hits != 1 || mode != 0) exit 1 }
  ' README.md || fail "README.md has no single fenced block marked <!-- booted: $1 --> for $release"
}
# Runs the README's block NAME inside the container (bash -e, each command shown).
readme() {
  local name=$1 text line
  text=$(readme_block "$name")
  echo "   README ($name):"
  while IFS= read -r line; do echo "     | $line"; done <<<"$text"
  printf '%s\n' "$text" >"$root/root/readme-$name.sh"
  ct bash -c "cd /root && bash -eo pipefail readme-$name.sh" 2>&1 | sed 's/^/     > /' ||
    fail "the README's block '$name' failed in the container"
}

step "boot $release with systemd-nspawn -b (private network: loopback only)"
t0=$SECONDS
boot
wait_booted
time_boot=$((SECONDS - t0))
ok "booted in $time_boot s: $(ct systemctl --version | head -n 1), system running, leader PID $leader"
links=$(ct ip -o link show | awk -F': ' '{ print $2 }' | tr '\n' ' ')
[[ $links == "lo " ]] || fail "the container has network links besides lo: $links"
ok "network links inside: lo only"
# A minimal Debian: no procps (kill, pgrep, ps) and no curl. On trixie ucf depends on
# procps, hence --force-depends; nothing the checks run needs ucf.
ct dpkg --remove --force-depends procps curl >/dev/null 2>&1 || fail "cannot remove procps and curl"
for program in /bin/kill /usr/bin/kill /usr/bin/pgrep /usr/bin/ps /usr/bin/curl; do
  ct test ! -e "$program" || fail "$program is still there"
done
ok "procps and curl removed: no kill, pgrep, ps or curl inside"
# The processes inside named $1 (/proc; there is no pgrep).
# shellcheck disable=SC2016 # for sh inside the container
procs_named() { ct sh -c 'grep -lx "$1" /proc/[0-9]*/comm 2>/dev/null' sh "$1" || true; }

# ---------------------------------------------------------------- the host before coid
step "the mail host before coid: Postfix + Dovecot, a virtual domain and system users"
if [[ $dovecot_major == 2.3 ]]; then
  host_dovecot=$(
    cat <<'EOF'
mail_location = maildir:~/Maildir
namespace inbox {
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /etc/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u /etc/dovecot/users
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    user = postfix
    group = postfix
    mode = 0600
  }
}
EOF
  )
else
  host_dovecot=$(
    cat <<'EOF'
mail_driver = maildir
mail_path = ~/Maildir
mail_inbox_path = ~/Maildir
namespace inbox {
  separator = /
}
passdb passwd-file {
  passwd_file_path = /etc/dovecot/users
  default_password_scheme = PLAIN
}
userdb passwd-file {
  passwd_file_path = /etc/dovecot/users
}
# Debian 13's conf.d/20-lmtp.conf drops the domain for its system users; with virtual
# users, Dovecot's LMTP must keep it.
protocol lmtp {
  auth_username_format = %{user | lower}
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    user = postfix
    group = postfix
    mode = 0600
  }
}
EOF
  )
fi
printf '# The mail host before coid (check-booted.sh).\n%s\n' "$host_dovecot" \
  >"$root/etc/dovecot/conf.d/99-host.conf"
cp packaging/check-booted.py packaging/check-dovecot24-live.py "$root/root/"
ct bash -euo pipefail -c "
  useradd --system --home-dir /var/vmail --create-home vmail
  echo '$user:{PLAIN}$password:'\$(id -u vmail):\$(id -g vmail)'::/var/vmail/example.net/alice' >/etc/dovecot/users
  chgrp dovecot /etc/dovecot/users && chmod 0640 /etc/dovecot/users
  useradd --create-home $local_user
  echo '$user ok' >/etc/postfix/vmailbox
  postconf -e 'myhostname = $host' 'mydestination = \$myhostname, localhost' \
    'home_mailbox = Maildir/' 'virtual_mailbox_domains = example.net' \
    'virtual_mailbox_maps = texthash:/etc/postfix/vmailbox' \
    'virtual_transport = lmtp:unix:private/dovecot-lmtp'
  doveconf -n >/dev/null
  systemctl restart dovecot postfix
" || fail "setting up the host before coid"
c=$(cursor)
send plain "before coid $run_id" "$user" "$local_user"
wait_mail "$user" INBOX "before coid $run_id"
wait_mail "$local_user" INBOX "before coid $run_id"
wait_journal "$c" 1 "to=<$user>.*relay=$host\[private/dovecot-lmtp\].*status=sent" -t postfix/lmtp >/dev/null ||
  fail "Postfix did not deliver to $user through private/dovecot-lmtp"
ok "Dovecot $(ct dovecot --version | cut -d' ' -f1), Postfix $(ct postconf -h mail_version):" \
  "$user gets mail through Dovecot's LMTP, $local_user through Postfix's local(8) into ~/Maildir"
# What the README's way back restores for local users: Debian's Postfix sets no
# mailbox_transport.
[[ -z $(ct postconf -h mailbox_transport) ]] || fail "mailbox_transport is set before coid: $(ct postconf mailbox_transport)"
ok "mailbox_transport is empty on Debian's Postfix (local(8) delivers), as the README says"

# ---------------------------------------------------------------- README: install
step "README: install the package"
cp "$deb" "$root/root/"
readme install
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
status=$(ct dpkg-query -W -f='${Version} ${db:Status-Abbrev}' coid)
[[ $status == "$deb_version ii " ]] || fail "coid $deb_version is not installed: $status"
for u in coid.service coid.socket; do
  [[ $(ct systemctl is-enabled "$u" || true) == disabled ]] || fail "the package enabled $u"
  [[ $(ct systemctl is-active "$u" || true) == inactive ]] || fail "the package started $u"
done
ok "coid $deb_version installed; coid.service and coid.socket neither enabled nor started"
out=$(ct coid --version)
[[ $out == "coid ${deb_version%-*}" ]] || fail "coid --version said '$out'"
page=$(ct sh -c 'zcat /usr/share/man/man8/coid.8.gz') || fail "cannot read /usr/share/man/man8/coid.8.gz"
[[ $page == "$(ct coid man)" ]] || fail "the installed coid.8.gz is not what 'coid man' prints"
ok "/usr/bin/coid --version: $out; /usr/share/man/man8/coid.8.gz is coid(8)"
# What postinst makes: the system user, the directories, the compiled Sieve scripts.
passwd=$(ct getent passwd coid) || fail "no user coid"
ct getent group coid >/dev/null || fail "no group coid"
uid=$(cut -d: -f3 <<<"$passwd")
((uid < 1000)) || fail "coid is not a system user (uid $uid)"
for want in "/var/lib/coid coid:coid 700" "/var/spool/postfix/coid coid:postfix 750"; do
  got=$(ct stat -c '%n %U:%G %a' "${want%% *}") || fail "${want%% *} missing"
  [[ $got == "$want" ]] || fail "$got, want $want"
done
for script in coid coid-seen; do
  ct test -s /etc/coid/dovecot/$script.svbin || fail "postinst did not compile /etc/coid/dovecot/$script.sieve"
done
ok "postinst: user coid (uid $uid), /var/lib/coid coid:coid 700, /var/spool/postfix/coid coid:postfix 750, coid.svbin and coid-seen.svbin"
# shellcheck disable=SC2016 # dpkg-query's format
conffiles=$(ct dpkg-query -W -f='${Conffiles}\n' coid | awk 'NF { print $1 }')
while read -r path; do
  ct test -f "$path" || continue
  grep -qxF "$path" <<<"$conffiles" || fail "$path is not a conffile"
done < <(ct dpkg -L coid | grep '^/etc/')
ok "conffiles: every file of the package under /etc ($(wc -l <<<"$conffiles"))"
# --man=no: Documentation=man:coid(8) would need man(1), which a minimal host lacks
# (the page itself is checked above).
if ! out=$(ct systemd-analyze verify --man=no /usr/lib/systemd/system/coid.service /usr/lib/systemd/system/coid.socket 2>&1); then
  fail "systemd-analyze verify: $out"
fi
# Strict: anything said about coid's units is a failure (warnings included).
said=$(grep -i coid <<<"$out" || true)
[[ -z $said ]] || fail "systemd-analyze verify complained about coid's units: $said"
ok "systemd-analyze verify coid.service coid.socket${out:+ (said: $(tr '\n' ' ' <<<"$out"))}"

# The operator's look at coid.toml (a real contact), and the test's changes: push
# targets on loopback (the stand-in below), as nothing may leave the container, and
# a nice value for the push threads (checked after the mail step).
ct systemd-run --quiet --unit=push-stand-in --property=WorkingDirectory=/root \
  python3 /root/check-dovecot24-live.py stand-in /root/push-port /root/push-record.jsonl
for ((i = 0; i < 100; i++)); do [[ -s $root/root/push-port ]] && break; sleep 0.1; done
[[ -s $root/root/push-port ]] || fail "the push stand-in did not start"
stand_in="http://127.0.0.1:$(cat "$root/root/push-port")"
ct sed -i -e 's|^vapid_subject = .*|vapid_subject = "mailto:postmaster@example.net"|' \
  -e "s|^notify_url = .*|notify_url = \"$stand_in/notify\"|" \
  -e 's|^allow_private_endpoints = .*|allow_private_endpoints = true|' \
  -e 's|^worker_nice = .*|worker_nice = 10|' /etc/coid/coid.toml
ct coid check-config --config /etc/coid/coid.toml >/dev/null || fail "coid check-config refused coid.toml"
ok "coid.toml: vapid_subject; the test's push stand-in at $stand_in (notify_url, allow_private_endpoints); worker_nice = 10"

step "README: the three edits, start, verify"
readme dovecot
grep -q coid <<<"$(ct doveconf -n)" || fail "doveconf -n shows nothing of coid after the include"
readme postfix
# Friction 1: with mailbox_transport, Postfix hands over bob@<host>; Dovecot's system
# userdb knows only bob, so its LMTP refuses until auth_username_format drops the domain.
ct python3 /root/check-booted.py lmtp-rcpt --socket /run/dovecot/lmtp \
  --rcpt "$local_user@$host" --expect 550 | sed 's/^   ok: /   ok: before the fix, Dovecot: /'
readme dovecot-local
ct python3 /root/check-booted.py lmtp-rcpt --socket /run/dovecot/lmtp \
  --rcpt "$local_user@$host" --expect 250 | sed 's/^   ok: /   ok: after it, Dovecot: /'
ct python3 /root/check-booted.py lmtp-rcpt --socket /run/dovecot/lmtp \
  --rcpt "$user" --expect 250 | sed 's/^   ok: /   ok: after it, Dovecot still: /'
readme postfix-local

# A failed start: coid.toml with two problems. journald makes each stderr line a
# record with the priority of its own <N> prefix: every line of the reason must be
# an error, so "journalctl -p err -u coid" shows all of it.
ct cp /etc/coid/coid.toml /root/coid.toml.good
ct sed -i -e '0,/^max_connections = [0-9]*/s//max_connections = 0/' \
  -e 's/^urgency = .*/urgency = "now"/' /etc/coid/coid.toml
bad_lines=("lmtp.max_connections: 0 is outside" 'push.urgency: unknown variant `now`, expected one of')
# journal_errors CURSOR WHAT: the lines of the reason are at priority err and at no
# lower priority.
journal_errors() {
  local c=$1 what=$2 line errs others
  errs=$(wait_journal "$c" 2 'max_connections: 0 is outside|urgency: unknown variant `now`' -u coid -p err -o cat) ||
    fail "$what: journalctl -p err -u coid lacks the reason: $errs; all: $(journal_since "$c" -u coid -o verbose | grep -E 'PRIORITY|MESSAGE=')"
  for line in "${bad_lines[@]}"; do
    grep -qF -- "$line" <<<"$errs" || fail "$what: '$line' is not at priority err: $errs"
  done
  others=$(journal_since "$c" -u coid -p warning..debug -o cat | grep -E 'max_connections|urgency' || true)
  [[ -z $others ]] || fail "$what: lines of the reason below priority err: $others"
  ok "$what: journalctl -p err -u coid shows the whole reason: $(tr '\n' '|' <<<"$errs")"
}
c=$(cursor)
ct systemctl start coid 2>/dev/null && fail "coid started with a bad coid.toml"
[[ $(unit coid.service ExecMainStatus) == 78 ]] || fail "coid exited $(unit coid.service ExecMainStatus), not 78"
journal_errors "$c" "failed start (exit 78)"
ct cp /root/coid.toml.good /etc/coid/coid.toml
ct systemctl reset-failed coid
readme start
readme verify
[[ $(unit coid.service ActiveState) == active ]] || fail "coid is not active"
[[ $(unit coid.service StatusText) == serving ]] ||
  fail "coid's status is '$(unit coid.service StatusText)', not 'serving'"
pid=$(unit coid.service MainPID)
listening=$(ct ss -xlpn)
grep -q "/var/spool/postfix/coid/lmtp .*pid=$pid," <<<"$listening" || fail "coid does not listen on its LMTP socket"
grep -q "/run/coid/dict .*pid=$pid," <<<"$listening" || fail "coid does not listen on /run/coid/dict"
perms=$(ct stat -c '%U:%G %a' /var/spool/postfix/coid/lmtp /run/coid/dict | tr '\n' ' ')
[[ $perms == "coid:postfix 660 coid:coid 660 " ]] || fail "socket owners and modes: $perms"
ok "coid active, Status \"serving\", PID $pid listens on coid/lmtp (coid:postfix 660) and /run/coid/dict (coid:coid 660)"
note "systemd-analyze security coid: $(ct systemd-analyze security coid 2>/dev/null | sed -n 's/.*Overall exposure level for coid.service: //p')"

# ---------------------------------------------------------------- coid doctor
step "coid doctor: the correct host, a round trip, then one thing broken at a time"
# The README's coid doctor block on the host as the guide leaves it: exit 0.
readme doctor
out=$(ct coid doctor --config /etc/coid/coid.toml --json) || fail "coid doctor --json: exit $?: $out"
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["status"] == "ok", d' "$out" ||
  fail "coid doctor --json is not status ok: $out"
ok "coid doctor: exit 0; --json status ok ($(grep -o '"severity":"ok"' <<<"$out" | wc -l) checks)"
for rcpt in "$user" "$local_user@$host"; do
  out=$(ct coid doctor --config /etc/coid/coid.toml --send-test "$rcpt") ||
    fail "coid doctor --send-test $rcpt: exit $?: $out"
  found=$(grep -E '^ok +roundtrip: test message to .* found in Dovecot .* removed$' <<<"$out") ||
    fail "coid doctor --send-test $rcpt: no round trip line: $out"
  ok "coid doctor --send-test: ${found#*roundtrip: }"
done
(($(ct doveadm search -u "$user" header subject 'coid doctor test' | wc -l) == 0)) ||
  fail "coid doctor --send-test left its message in $user's mailbox"
# --network: notify_url is the stand-in on the container's loopback (nothing leaves).
out=$(ct coid doctor --config /etc/coid/coid.toml --network) || fail "coid doctor --network: exit $?: $out"
line=$(grep -E "^ok +network: $stand_in/notify: TCP connect to 127\.0\.0\.1:" <<<"$out") ||
  fail "coid doctor --network: no connect line for $stand_in/notify: $out"
ok "coid doctor --network: ${line#*network: }"
# doctor_expect EXIT PATTERN WHAT: coid doctor exits EXIT and one finding matches.
doctor_expect() {
  local want=$1 pattern=$2 what=$3 out rc=0
  out=$(ct coid doctor --config /etc/coid/coid.toml 2>&1) || rc=$?
  ((rc == want)) || fail "coid doctor, $what: exit $rc, want $want: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "coid doctor, $what: nothing matches '$pattern': $out"
  ok "coid doctor, $what: exit $rc: $(grep -E -m1 -- "$pattern" <<<"$out" | sed 's/^ *//' | cut -c1-150)"
  out=$(grep -A1 -E -- "$pattern" <<<"$out" | sed -n 2p)
  [[ $out == *"fix: "* ]] || fail "coid doctor, $what: no fix under the finding"
}
# Postfix, one thing at a time; restored with postconf.
ct postconf -e 'virtual_transport = lmtp:unix:private/dovecot-lmtp'
doctor_expect 1 '^warning +postfix: virtual_transport = lmtp:unix:private/dovecot-lmtp does not deliver to coid' \
  "virtual_transport to Dovecot"
ct postconf -e 'mailbox_transport ='
doctor_expect 2 '^error +postfix: no transport delivers to coid' "no transport to coid"
ct postconf -e 'virtual_transport = lmtp:unix:coid/lmtp' 'mailbox_transport = lmtp:unix:coid/lmtp'
ct postconf -e 'smtpd_recipient_limit = 100'
doctor_expect 2 '^error +postfix: smtpd_recipient_limit = 100 is below \[deltachat\] maxsmtprecipients = 1000' \
  "smtpd_recipient_limit 100"
ct postconf -X smtpd_recipient_limit
# Dovecot: one override at a time at the end of local.conf (doveconf reads the files;
# Dovecot itself is not reloaded), then local.conf as it was.
cp "$root/etc/dovecot/local.conf" "$work/local.conf.good"
dovecot_break() { # what pattern exit text
  printf '%s\n' "$4" >>"$root/etc/dovecot/local.conf"
  doctor_expect "$3" "$2" "$1"
  cp "$work/local.conf.good" "$root/etc/dovecot/local.conf"
}
if [[ $dovecot_major == 2.3 ]]; then
  no_dict=$'mail_attribute_dict = file:%h/dovecot-attributes'
  no_caps=$'protocol imap {\n  imap_capability = +IDLE\n}'
  no_sieve=$'protocol lmtp {\n  mail_plugins =\n}'
  domain=$'protocol lmtp {\n  auth_username_format = %Lu\n}'
  mbox=$'mail_location = mbox:~/mail:INBOX=/var/mail/%u'
else
  no_dict=$'mail_attribute {\n  dict proxy {\n    dict_proxy_socket_path = /run/elsewhere/dict\n  }\n}'
  no_caps=$'protocol imap {\n  imap_capability {\n    COI = no\n  }\n}'
  no_sieve=$'protocol lmtp {\n  mail_plugins {\n    sieve = no\n  }\n}'
  domain=$'protocol lmtp {\n  auth_username_format = %{user | lower}\n}'
  mbox=$'mail_driver = mbox\nmail_path = ~/mail\nmail_inbox_path = /var/mail/%{user}'
fi
dovecot_break "imap_metadata = no" '^error +dovecot: imap_metadata = no' 2 $'protocol imap {\n  imap_metadata = no\n}'
dovecot_break "capabilities without COI" '^error +dovecot: imap_capability lacks COI' 2 "$no_caps"
dovecot_break "another attribute dict" '^error +dovecot: mail_attribute_dict is .* not coid.s dict socket /run/coid/dict' 2 "$no_dict"
dovecot_break "no sieve plugin at LMTP" '^error +dovecot: protocol lmtp has no sieve in mail_plugins' 2 "$no_sieve"
dovecot_break "local users' domain kept" '^error +dovecot: mailbox_transport goes to coid, and protocol lmtp .* keeps the domain' 2 "$domain"
dovecot_break "mbox with the seen filter" '^error +dovecot: mail_(location|driver) = mbox.*twice' 2 "$mbox"
ct touch /etc/coid/dovecot/coid.sieve
doctor_expect 2 '^error +dovecot: /etc/coid/dovecot/coid.svbin is older than /etc/coid/dovecot/coid.sieve' \
  "coid.sieve edited, not compiled"
ct touch -r /etc/coid/dovecot/coid.svbin /etc/coid/dovecot/coid.sieve
cp "$root/etc/coid/coid.toml" "$work/coid.toml.doctor"
ct sed -i 's|^lmtp = "/run/dovecot/lmtp"|lmtp = "/run/dovecot/lmtp-elsewhere"|' /etc/coid/coid.toml
doctor_expect 2 '^error +dovecot: no Dovecot LMTP listener at /run/dovecot/lmtp-elsewhere' \
  "coid.toml's lmtp where Dovecot has no listener"
cp "$work/coid.toml.doctor" "$root/etc/coid/coid.toml"
# coid's own side.
ct chmod 0600 /var/spool/postfix/coid/lmtp
doctor_expect 2 '^error +coid: \[lmtp\] unix_socket /var/spool/postfix/coid/lmtp is coid:postfix 0600, coid.toml asks for coid:postfix 0660' \
  "LMTP socket mode 0600"
ct chmod 0660 /var/spool/postfix/coid/lmtp
ct chown root:root /var/lib/coid
doctor_expect 2 '^error +coid: \[state\] dir /var/lib/coid is root:root 0700: the service user coid cannot write it' \
  "state dir owned by root"
ct chown coid:coid /var/lib/coid
ct systemctl stop coid
doctor_expect 2 '^error +coid: \[lmtp\] unix_socket /var/spool/postfix/coid/lmtp does not exist: coid is not running' \
  "coid stopped"
ct systemctl start coid
ct coid doctor --config /etc/coid/coid.toml >/dev/null || fail "coid doctor after restoring everything: exit $?"
ok "everything restored: coid doctor exits 0 again"
pid=$(unit coid.service MainPID)

# ---------------------------------------------------------------- IMAP METADATA
step "IMAP METADATA through Dovecot to coid's dict: COI settings, Delta Chat, Web Push"
ct python3 /root/check-booted.py imap-checks --user "$user" --password "$password" \
  --stand-in "$stand_in" --record /root/push-record.jsonl --tokens-out /root/tokens ||
  fail "an IMAP check failed (above)"

# ---------------------------------------------------------------- mail
step "mail through Postfix -> coid -> Dovecot: a virtual and a local user"
c=$(cursor)
send plain "plain $run_id" "$user" "$local_user"
send chat "chat $run_id" "$user" "$local_user"
wait_mail "$user" INBOX "plain $run_id"
wait_mail "$user" COI/Chats "chat $run_id"
wait_mail "$local_user" INBOX "plain $run_id"
wait_mail "$local_user" INBOX "chat $run_id"
(($(count "$user" INBOX "chat $run_id") == 0)) || fail "the chat is also in $user's INBOX"
flags=$(ct doveadm fetch -u "$user" flags mailbox COI/Chats header subject "chat $run_id")
grep -qF "\$Chat" <<<"$flags" || fail "the chat in $user's COI/Chats has no \$Chat: $flags"
ok "$user (virtual, COI on, message-filter active): plain mail in INBOX, the chat in COI/Chats with \$Chat"
ok "$local_user (local): both in INBOX"
for rcpt in "$user" "$local_user@$host"; do
  sent=$(wait_journal "$c" 2 "to=<$rcpt>.*relay=$host\[coid/lmtp\].*status=sent" -t postfix/lmtp) ||
    fail "Postfix's log has not 2 deliveries to $rcpt through coid/lmtp: $(journal_since "$c" -t postfix/lmtp)"
  (($(wc -l <<<"$sent") == 2)) || fail "Postfix delivered more than 2 to $rcpt: $sent"
done
ok "Postfix: status=sent, relay=${host}[coid/lmtp], twice for each"
delivered=$(wait_journal "$c" 4 'pipeline: delivered rcpt=' -u coid -o cat) ||
  fail "coid's journal has not 4 'delivered' lines: $delivered"
grep -q "rcpt=$user folder=\"COI/Chats\" flags=\[\"\\\$Chat\"\]" <<<"$delivered" || fail "coid's journal: no chat delivery to COI/Chats: $delivered"
n=$(grep -c "rcpt=$local_user@$host" <<<"$delivered" || true)
((n == 2)) || fail "coid's journal has $n deliveries to $local_user@$host, want 2"
ok "coid's journal: a 'delivered' line per message and recipient"
# The unit raises journald's per-unit rate limit above coid's lines at line rate.
limit="$(unit coid.service LogRateLimitIntervalUSec) $(unit coid.service LogRateLimitBurst)"
[[ $limit == "10s 20000" ]] || fail "coid's journal rate limit is '$limit', want '10s 20000'"
ok "coid's journal rate limit: 20000 lines per 10 s"
# The push threads run at [push] worker_nice (10 here): the unit's system call filter
# lets coid lower its own threads' priority (setpriority is in @resources).
threads=$(ct bash -c 'for t in /proc/'"$pid"'/task/*; do s=$(cat "$t/stat"); s=${s##*) }; set -- $s; echo "$(cat "$t/comm") ${17}"; done')
nices=$(awk '$1 == "coid-push" {print $2}' <<<"$threads" | sort -u)
[[ "$nices" == 10 ]] || fail "coid-push threads at nice '${nices//$'\n'/,}', want 10: $threads"
if journal_since "$c" -u coid -o cat | grep -q "cannot lower the push worker"; then
  fail "coid could not lower its push threads' priority: $(journal_since "$c" -u coid -o cat | grep 'cannot lower')"
fi
ok "the push threads (coid-push) run at nice 10"
# Delta Chat: one notification per token and message for alice (notify = "all").
for ((i = 0; i < 100; i++)); do
  (($(grep -c '"/notify"' "$root/root/push-record.jsonl" || true) >= 4)) && break
  sleep 0.1
done
python3 - "$root/root/push-record.jsonl" "$root/root/tokens" <<'EOF' || fail "Delta Chat notifications (above)"
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1])]
bodies = sorted(p["body"] for p in posts if p["path"] == "/notify")
tokens = open(sys.argv[2]).read().split()
want = sorted(tokens * 2)
if bodies != want:
    sys.exit(f"notify stand-in got {len(bodies)} POSTs, want 2 per token (2 tokens): {bodies}")
print("   ok: Delta Chat: the stand-in got one POST per token and message (4), body = token")
EOF

# ---------------------------------------------------------------- reload
step "reload keeps sessions"
c=$(cursor)
restarts=$(unit coid.service NRestarts)
[[ $(unit coid.service ExecReload) == *"path=/usr/bin/coid ; argv[]=/usr/bin/coid reload \$MAINPID"* ]] ||
  fail "ExecReload is not coid reload: $(unit coid.service ExecReload)"
ct python3 /root/check-booted.py lmtp-across --socket /var/spool/postfix/coid/lmtp \
  --rcpt "$user" --subject "across reload $run_id" -- systemctl reload coid ||
  fail "a session across reload (above)"
wait_mail "$user" INBOX "across reload $run_id"
wait_journal "$c" 1 'reloaded: new sessions use the new config' -u coid -o cat >/dev/null ||
  fail "coid's journal says nothing of the reload"
[[ $(unit coid.service MainPID) == "$pid" && $(unit coid.service NRestarts) == "$restarts" ]] ||
  fail "coid's PID changed across the reload"
ok "same PID $pid, journal: reloaded; the message is in $user's INBOX (no kill(1) here: coid reload)"
# A refused reload: the same two problems; coid keeps serving on the old config.
ct sed -i -e '0,/^max_connections = [0-9]*/s//max_connections = 0/' \
  -e 's/^urgency = .*/urgency = "now"/' /etc/coid/coid.toml
c=$(cursor)
ct systemctl reload coid || fail "systemctl reload coid failed"
wait_journal "$c" 1 'reload refused' -u coid -p err -o cat >/dev/null ||
  fail "no 'reload refused' at priority err: $(journal_since "$c" -u coid -o cat)"
journal_errors "$c" "refused reload"
ct cp /root/coid.toml.good /etc/coid/coid.toml
[[ $(unit coid.service MainPID) == "$pid" && $(unit coid.service ActiveState) == active ]] ||
  fail "coid did not keep running after a refused reload"
send plain "after refused reload $run_id" "$user"
wait_mail "$user" INBOX "after refused reload $run_id"
ok "after the refused reload the same coid ($pid) delivers"

# ---------------------------------------------------------------- watchdog
step "watchdog: a hung coid (SIGSTOP) is killed and restarted by systemd"
c=$(cursor)
t0=$SECONDS
ct bash -c "kill -STOP $pid" # bash's kill: there is no kill(1) here
for ((i = 0; i < 1200; i++)); do
  new=$(unit coid.service MainPID)
  [[ $new != 0 && $new != "$pid" && $(unit coid.service StatusText) == serving ]] && break
  sleep 0.1
done
[[ $new != 0 && $new != "$pid" ]] || fail "coid was not restarted within 120 s of SIGSTOP"
wait_journal "$c" 1 'Watchdog timeout' -u coid -o cat >/dev/null ||
  fail "no watchdog timeout in the journal: $(journal_since "$c" -u coid -o cat)"
((restarts + 1 == $(unit coid.service NRestarts))) || fail "NRestarts did not go up by one"
ct test ! -e "/proc/$pid" || fail "the hung coid ($pid) is still there"
ok "after $((SECONDS - t0)) s: journal 'Watchdog timeout', NRestarts $((restarts + 1)), new PID $new serving"
pid=$new
send plain "after watchdog $run_id" "$user"
wait_mail "$user" INBOX "after watchdog $run_id"
ok "the restarted coid delivers"

# ---------------------------------------------------------------- stop while mail arrives
step "stop while mail arrives: deferred, never bounced"
# shellcheck disable=SC2016 # for sh inside the container
stop_and_wait='systemctl stop --no-block coid &&
  while [ "$(systemctl show -P ActiveState coid)" = active ]; do sleep 0.1; done'
c=$(cursor)
ct python3 /root/check-booted.py lmtp-across --socket /var/spool/postfix/coid/lmtp \
  --rcpt "$user" --subject "across stop $run_id" --at data -- \
  sh -c "$stop_and_wait" ||
  fail "the transaction in flight at stop (above)"
wait_mail "$user" INBOX "across stop $run_id"
for ((i = 0; i < 300; i++)); do
  [[ $(unit coid.service ActiveState) == inactive ]] && break
  sleep 0.1
done
[[ $(unit coid.service ActiveState) == inactive && $(unit coid.service Result) == success ]] ||
  fail "coid did not stop cleanly: $(unit coid.service ActiveState) $(unit coid.service Result)"
ok "coid stopped (result success) after the message in flight got 250"
send plain "while stopped $run_id" "$user"
deferred=$(wait_journal "$c" 1 "to=<$user>.*status=deferred" -t postfix/lmtp) ||
  fail "Postfix did not defer mail while coid was stopped: $(journal_since "$c" -t postfix/lmtp)"
ok "Postfix: ${deferred##*status=}"
grep -q '"queue_name": *"deferred"' <<<"$(ct postqueue -j)" || fail "the message is not in Postfix's deferred queue"
ok "the message waits in Postfix's deferred queue"
ct systemctl start coid
ct postqueue -f
wait_mail "$user" INBOX "while stopped $run_id"
sleep 1
(($(count "$user" INBOX "while stopped $run_id") == 1)) || fail "the deferred message arrived more than once"
bounced=$(journal_since "$c" | grep 'status=bounced' || true)
[[ -z $bounced ]] || fail "something bounced: $bounced"
ok "after systemctl start coid and a queue run: delivered once; nothing bounced"
pid=$(unit coid.service MainPID)

# ---------------------------------------------------------------- reboot
step "reboot: Dovecot before coid, coid before Postfix"
old=$leader
t0=$SECONDS
# systemd-nspawn ends when its container reboots (exit 133: "reboot"); the machine's
# firmware, so to speak, is this script: boot the same root again.
# (systemctl may report "Connection reset by peer" as PID 1 goes; the wait below is
# what counts.)
ct systemctl reboot --no-block 2>/dev/null || true
for ((i = 0; i < 600; i++)); do
  kill -0 "$nspawn_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not shut down in 60 s after systemctl reboot"
rc=0
wait "$nspawn_pid" || rc=$?
((rc == 133)) || fail "systemd-nspawn exited $rc after systemctl reboot, not 133 (reboot)"
nspawn_pid="" leader=""
boot
wait_booted "$old"
ok "rebooted in $((SECONDS - t0)) s (systemd-nspawn exit 133, booted again; new leader PID $leader)"
[[ $(unit coid.service ActiveState) == active ]] || fail "coid is not active after the reboot"
mono() { unit "$1" "$2"Monotonic; }
dovecot_up=$(mono dovecot.service ActiveEnterTimestamp)
coid_start=$(mono coid.service ExecMainStartTimestamp)
coid_up=$(mono coid.service ActiveEnterTimestamp)
postfix_start=$(mono "$postfix_unit" InactiveExitTimestamp)
((dovecot_up <= coid_start)) || fail "coid started (${coid_start} us) before Dovecot was up (${dovecot_up} us)"
((coid_up <= postfix_start)) || fail "Postfix started (${postfix_start} us) before coid was ready (${coid_up} us)"
ok "boot, ms after Dovecot was up: coid starts at +$(((coid_start - dovecot_up) / 1000))," \
  "is ready (READY=1) at +$(((coid_up - dovecot_up) / 1000)), ${postfix_unit%.service} starts at +$(((postfix_start - dovecot_up) / 1000))"
stops=$(ct journalctl -b -1 _PID=1 -o cat --no-pager | grep -E "^Stopped (coid|dovecot|${postfix_unit%.service})\.service" || true)
# The last "Stopped" of each (earlier ones are this test's own stops and restarts).
order=$(sed -E 's/^Stopped ([^ ]*)\.service.*/\1/' <<<"$stops" |
  awk '{ last[$0] = NR } END { for (u in last) print last[u], u }' | sort -n | cut -d' ' -f2 | tr '\n' ' ')
[[ $order == "${postfix_unit%.service} coid dovecot " ]] ||
  fail "shutdown order: '$order', want '${postfix_unit%.service} coid dovecot'"
ok "shutdown, from the journal of the boot before: stopped $order"
send plain "after reboot $run_id" "$user"
wait_mail "$user" INBOX "after reboot $run_id"
ok "mail is delivered after the reboot"

# ---------------------------------------------------------------- socket activation
step "socket activation, in the README's order"
# What the README warns of: coid.socket cannot start while the running coid holds the
# socket. (If the units learn to handle this, the README's order can go.)
c=$(cursor)
if ct systemctl enable --now coid.socket >/dev/null 2>&1; then
  fail "systemctl enable --now coid.socket worked while coid ran: the README's warning is out of date"
fi
wait_journal "$c" 1 'coid.socket: Socket service coid.service already active, refusing' -u coid.socket >/dev/null ||
  fail "coid.socket failed for another reason: $(journal_since "$c" -u coid.socket -o cat)"
ct systemctl disable --quiet coid.socket
ct systemctl reset-failed coid.socket 2>/dev/null || true # (may be unloaded already)
[[ $(unit coid.socket ActiveState) == inactive ]] || fail "coid.socket: $(unit coid.socket ActiveState)"
ok "the wrong order: systemctl enable --now coid.socket while coid runs fails (journal: already active, refusing)"
readme socket
[[ $(unit coid.socket ActiveState) == active && $(unit coid.service ActiveState) == active ]] ||
  fail "coid.socket $(unit coid.socket ActiveState), coid.service $(unit coid.service ActiveState)"
pid=$(unit coid.service MainPID)
held=$(ct ss -xlpn | grep '/var/spool/postfix/coid/lmtp ' || true)
if ! grep -q '"systemd",pid=1,' <<<"$held" || ! grep -q "\"coid\",pid=$pid," <<<"$held"; then
  fail "the LMTP socket is not systemd's, passed to coid: $held"
fi
grep -q 'LMTP sockets from systemd' <<<"$(ct journalctl -u coid -b -o cat)" ||
  fail "coid's journal does not say it took systemd's socket"
ok "coid.socket and coid.service active; systemd (PID 1) holds coid/lmtp, coid ($pid) serves it"
c=$(cursor)
ct systemctl stop coid.service 2>/dev/null
[[ $(unit coid.socket ActiveState) == active ]] || fail "coid.socket went down with coid.service"
send plain "socket activated $run_id" "$user"
wait_mail "$user" INBOX "socket activated $run_id"
[[ $(unit coid.service ActiveState) == active ]] || fail "coid.service was not started by the socket"
! grep -q 'status=deferred' <<<"$(journal_since "$c" -t postfix/lmtp)" || fail "mail was deferred while coid was started"
ok "coid.service stopped, coid.socket kept listening; the next mail started coid and was delivered, not deferred"
pid=$(unit coid.service MainPID)

# ---------------------------------------------------------------- upgrade
step "upgrade: a rebuilt .deb with a higher version"
vapid=$(ct coid push --config /etc/coid/coid.toml vapid)
settings=$(ct coid user --config /etc/coid/coid.toml get "$user")
imap_settings=$(ct python3 /root/check-booted.py getmeta --user "$user" --password "$password")
tokens_before=$(ct coid push --config /etc/coid/coid.toml list "$user" | grep -c deltachat || true)
new_version="$deb_version+booted1"
rm -rf "$work/deb" && mkdir -p "$work/deb" "$root/root/upgrade"
dpkg-deb -R "$deb" "$work/deb/pkg"
sed -i "s/^Version: .*/Version: $new_version/" "$work/deb/pkg/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 -b "$work/deb/pkg" "$root/root/upgrade/coid_${new_version}_amd64.deb" >/dev/null
socket_before="$(unit coid.socket InvocationID) $(ct stat -c %i /var/spool/postfix/coid/lmtp)"
ct python3 /root/check-booted.py connect-during --socket /var/spool/postfix/coid/lmtp \
  -- sh -c 'dpkg -i /root/upgrade/coid_*_amd64.deb' || fail "connects during the upgrade (above)"
socket_after="$(unit coid.socket InvocationID) $(ct stat -c %i /var/spool/postfix/coid/lmtp)"
[[ $socket_after == "$socket_before" && $(unit coid.socket ActiveState) == active ]] ||
  fail "the upgrade restarted coid.socket (invocation and socket inode $socket_before, now $socket_after)"
ok "coid.socket was not restarted: same invocation and socket inode ($socket_after)"
# shellcheck disable=SC2016 # dpkg-query's format
[[ $(ct dpkg-query -W -f='${Version}' coid) == "$new_version" ]] || fail "coid is not at $new_version"
new=$(unit coid.service MainPID)
[[ $new != "$pid" && $new != 0 && $(unit coid.service ActiveState) == active ]] ||
  fail "coid was not restarted by the upgrade (PID $pid, now $new)"
[[ $(unit coid.socket ActiveState) == active ]] || fail "coid.socket is not active after the upgrade"
[[ $(ct coid push --config /etc/coid/coid.toml vapid) == "$vapid" ]] || fail "the VAPID key changed"
[[ $(ct coid user --config /etc/coid/coid.toml get "$user") == "$settings" ]] || fail "$user's COI settings changed"
[[ $(ct python3 /root/check-booted.py getmeta --user "$user" --password "$password") == "$imap_settings" ]] ||
  fail "$user's COI settings over IMAP changed"
[[ $(ct coid push --config /etc/coid/coid.toml list "$user" | grep -c deltachat || true) == "$tokens_before" ]] ||
  fail "$user's Delta Chat tokens changed"
ok "$deb_version -> $new_version: coid restarted (PID $pid -> $new); same VAPID key, COI settings" \
  "(coid user get, GETMETADATA), $tokens_before Delta Chat tokens"
send plain "after upgrade $run_id" "$user"
wait_mail "$user" INBOX "after upgrade $run_id"
ok "mail is delivered after the upgrade"

step "the dpkg trigger on sievec compiles coid's Sieve scripts again"
# What a Pigeonhole upgrade does to coid: dpkg activates the file trigger on
# /usr/bin/sievec; coid's postinst runs with "triggered".
ct rm -f /etc/coid/dovecot/coid.svbin /etc/coid/dovecot/coid-seen.svbin
ct dpkg-trigger --no-await /usr/bin/sievec
out=$(ct dpkg --triggers-only --pending 2>&1) || fail "dpkg --triggers-only: $out"
for script in coid coid-seen; do
  ct test -s /etc/coid/dovecot/$script.svbin || fail "the trigger did not compile $script.sieve: $out"
done
# shellcheck disable=SC2016 # dpkg-query's format
[[ $(ct dpkg-query -W -f='${db:Status-Abbrev}' coid) == "ii " ]] || fail "coid is not fully installed after the trigger"
ok "dpkg-trigger /usr/bin/sievec: coid.svbin and coid-seen.svbin compiled again"

# ---------------------------------------------------------------- the way back
step "README: the way back"
readme way-back-postfix
readme way-back-postfix-local
[[ -z $(ct postconf -n mailbox_transport) && -z $(ct postconf -h mailbox_transport) ]] ||
  fail "mailbox_transport is not back to empty: $(ct postconf mailbox_transport)"
ok "mailbox_transport is empty again (Postfix's local delivers)"
readme way-back
for u in coid.service coid.socket; do
  [[ $(ct systemctl is-active "$u" || true) == inactive ]] || fail "$u is still active"
  [[ $(ct systemctl is-enabled "$u" || true) == disabled ]] || fail "$u is still enabled"
done
left=$(procs_named coid)
[[ -z $left ]] || fail "a coid process is left: $left"
left=$(ct ss -xlpn | grep -E '/var/spool/postfix/coid/|/run/coid/' || true)
[[ -z $left ]] || fail "something of coid still listens: $left"
left=$(ct ss -tlpn | grep ':9466 ' || true)
[[ -z $left ]] || fail "coid's metrics port still listens: $left"
grep -q coid <<<"$(ct doveconf -n)" && fail "Dovecot's config still has coid in it"
ok "coid.service, coid.socket inactive and disabled; no coid process; nothing listens on" \
  "coid/lmtp, /run/coid or :9466; Dovecot's config has no coid"
c=$(cursor)
send plain "way back $run_id" "$user" "$local_user"
wait_mail "$user" INBOX "way back $run_id"
wait_mail "$local_user" INBOX "way back $run_id"
wait_journal "$c" 1 "to=<$user>.*relay=$host\[private/dovecot-lmtp\].*status=sent" -t postfix/lmtp >/dev/null ||
  fail "Postfix did not deliver to $user through private/dovecot-lmtp"
wait_journal "$c" 1 "to=<$local_user@$host>.*status=sent \(delivered to maildir\)" -t postfix/local >/dev/null ||
  fail "Postfix's local(8) did not deliver to $local_user's maildir"
ok "mail goes straight to Dovecot again ($user) and to local(8) ($local_user)"

step "README: remove, then purge"
readme remove
ct test -f /var/lib/coid/coid.sqlite || fail "dpkg --remove deleted /var/lib/coid/coid.sqlite"
ct test -f /etc/coid/coid.toml || fail "dpkg --remove deleted /etc/coid/coid.toml"
ok "remove: /var/lib/coid/coid.sqlite and /etc/coid/coid.toml are still there"
readme purge
for path in /var/lib/coid /var/spool/postfix/coid /etc/coid /usr/bin/coid; do
  ct test ! -e "$path" || fail "$path is still there after purge"
done
units=$(ct find /etc/systemd/system -name '*coid*')
[[ -z $units ]] || fail "purge left unit links or masks: $units"
ct getent passwd coid >/dev/null || fail "purge removed the user coid (Debian policy: it stays)"
ok "purge: /var/lib/coid, /var/spool/postfix/coid, /etc/coid, /usr/bin/coid, coid's units gone; the user coid stays"

step "done"
time_total=$((SECONDS - began))
echo "   check-booted $release: all checks passed in $time_total s" \
  "(root $cache_note, $time_cache s; first boot $time_boot s)"
