#!/usr/bin/env bash
# Checks the Dovecot 2.4 snippets (conf.d/dovecot/2.4/) against a real Dovecot 2.4:
# Debian 13 (trixie) in a debootstrap chroot, since this Debian 12 machine has 2.3.
# With coid's one include line in local.conf, `doveconf -n` must accept the config
# without a word on stderr and show every setting coid relies on, and `sievec` must
# compile coid's two Sieve scripts (their extensions are enabled by the snippets).
# Run as root (by .ci/run). The chroot is kept in $COID_TRIXIE_ROOT for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${COID_TRIXIE_ROOT:-/var/tmp/coid-trixie}"
fail() { echo "check-dovecot24: $*" >&2; exit 1; }

type -P debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}
type -P debootstrap >/dev/null || fail "debootstrap is missing after the install"

mount -t proc proc "$root/proc" 2>/dev/null || true
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
if [ ! -e "$root/.coid-ready" ]; then
  # Half-made by an earlier run that failed: start over.
  umount "$root/proc" 2>/dev/null || true
  ! mountpoint -q "$root/proc" || fail "$root/proc is still mounted; not deleting $root"
  rm -rf --one-file-system "$root"
  echo "== debootstrap trixie into $root"
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null
  mount -t proc proc "$root/proc"
  # No daemon may start inside the chroot while packages install.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  chroot "$root" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq \
    dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve >/dev/null
  touch "$root/.coid-ready"
fi
version="$(chroot "$root" doveconf -n 2>/dev/null | sed -n 's/^# \(2\.4[^ ]*\).*/\1/p' | head -1)"
[ -n "$version" ] || fail "no Dovecot 2.4 in $root"
echo "== Dovecot $version (Debian trixie)"

# The package's layout: /etc/coid/dovecot (shared scripts) and /etc/coid/dovecot/2.4.
install -d "$root/etc/coid/dovecot/2.4" "$root/usr/lib/coid/sieve-execute"
install -m 0644 conf.d/dovecot/coid.sieve conf.d/dovecot/coid-seen.sieve "$root/etc/coid/dovecot/"
install -m 0644 conf.d/dovecot/2.4/*.conf "$root/etc/coid/dovecot/2.4/"
install -m 0755 conf.d/dovecot/coid-seen-move "$root/usr/lib/coid/sieve-execute/"
chroot "$root" getent group coid >/dev/null || chroot "$root" groupadd --system coid
echo '!include /etc/coid/dovecot/2.4/coid.conf' >"$root/etc/dovecot/local.conf"

config="$(mktemp)"
trap 'umount "$root/proc" 2>/dev/null || true; rm -f "$config"' EXIT
errors="$(chroot "$root" doveconf -n 2>&1 >"$config")" || fail "doveconf -n failed: $errors"
[ -z "$errors" ] || fail "doveconf -n complained: $errors"
for needle in \
  'sieve_script coid {' 'path = /etc/coid/dovecot/coid.sieve' 'type = before' \
  'editheader = yes' 'servermetadata = yes' 'vnd.dovecot.execute = yes' \
  'sieve_imapsieve = yes' 'sieve_extprograms = yes' \
  'sieve_execute_bin_dir = /usr/lib/coid/sieve-execute' \
  'mail_attribute {' 'socket_path = /run/coid/dict' 'name = coid' \
  'coid = yes' 'COI = yes' 'WEBPUSH = yes' 'XDELTAPUSH = yes' 'imap_metadata = yes' \
  'mailbox COI/Chats {' 'auto = subscribe' 'mailbox COI/Contacts {' \
  'path = /etc/coid/dovecot/coid-seen.sieve' 'cause = flag' \
  'lda_mailbox_autosubscribe = yes'; do
  grep -qF -- "$needle" "$config" || fail "doveconf -n lacks: $needle"
done
echo "   ok: doveconf -n accepts the include and shows every coid setting"
for script in coid.sieve coid-seen.sieve; do
  chroot "$root" sievec "/etc/coid/dovecot/$script" "/tmp/$script.svbin" ||
    fail "sievec $script failed"
done
echo "   ok: sievec compiles coid.sieve and coid-seen.sieve with the snippets' extensions"
# Without the include the same scripts must NOT compile: the check above means something.
rm -f "$root/etc/dovecot/local.conf"
if errors="$(chroot "$root" sievec /etc/coid/dovecot/coid-seen.sieve /tmp/x.svbin 2>&1)"; then
  fail "coid-seen.sieve compiled without the snippets: the check proves nothing"
fi
grep -q "unknown Sieve capability" <<<"$errors" ||
  fail "sievec failed for another reason than the missing extensions: $errors"
echo "   ok: without the include, coid-seen.sieve does not compile"
