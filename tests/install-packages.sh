#!/usr/bin/env bash
# Installs with apt what the tests (tests/run.sh) and the benchmarks (benches/run.sh)
# run, on a Debian 12 / Ubuntu machine, as root, then checks that every program they
# spawn is there; anything missing fails the run here, never a test's skip:
#   Postfix (postfix, postqueue, postconf); Dovecot with LMTP, IMAP, Pigeonhole Sieve
#   and ManageSieve (dovecot, doveadm, sievec; the harness's dovecot.conf names the
#   managesieve-login service); iproute2 (ip) and util-linux (unshare, flock) for the
#   loopback-only network namespace; procps (kill: the harness stops daemons by PID);
#   python3 with venv for the Python tools in tests/requirements.txt; systemd for
#   systemd-socket-activate (socket activation tests) and systemd-analyze (the unit
#   check); PostgreSQL (postgresql: the store's tests start their own server with
#   /usr/lib/postgresql/<version>/bin/initdb and pg_ctl, as user postgres, and openssl
#   for its test certificates). It also creates the system user coid, as the Debian package's postinst
#   does: the service tests start coid as root and check it drops to that user.
# Postfix is installed as "No configuration": no /etc/postfix/main.cf, no system
# Postfix started; the tests and benchmarks start their own.
set -euo pipefail

packages=(dovecot-core dovecot-lmtpd dovecot-imapd dovecot-sieve dovecot-managesieved
  postfix iproute2 util-linux procps python3 python3-venv systemd adduser postgresql openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-packages.sh: installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  # No system daemon may start (Dovecot would listen on every address): the tests
  # start their own. policy-rc.d is removed again unless it was there before.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=yes
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
for tool in dovecot doveadm doveconf sievec postfix postqueue postconf smtp-sink smtp-source unshare ip flock kill \
  useradd id sync sha256sum openssl python3 systemd-socket-activate systemd-analyze adduser; do
  # `type -P`: a program on PATH, not a shell builtin (kill is both).
  type -P "$tool" >/dev/null || {
    echo "install-packages.sh: $tool is missing after the install" >&2
    exit 1
  }
done
# PostgreSQL's server programs are not on PATH: the store's tests take the highest
# version's from /usr/lib/postgresql/*/bin (the package's system cluster is not used).
pg_ok=""
for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then pg_ok=yes; fi
done
[ -n "$pg_ok" ] || {
  echo "install-packages.sh: no initdb and pg_ctl under /usr/lib/postgresql/*/bin after the install" >&2
  exit 1
}
id postgres >/dev/null || { echo "install-packages.sh: the user postgres is missing" >&2; exit 1; }
# The account coid runs as, made as packaging/debian/postinst makes it.
getent group coid >/dev/null || addgroup --quiet --system coid
getent passwd coid >/dev/null ||
  adduser --quiet --system --ingroup coid --home /var/lib/coid --no-create-home coid
id coid >/dev/null || { echo "install-packages.sh: cannot create the user coid" >&2; exit 1; }
