#!/usr/bin/env bash
# Runs coid's whole test suite on a fresh Debian 12 / Ubuntu machine, as root:
#   sudo tests/run.sh
# 1. installs what the tests need (Postfix, Dovecot with Pigeonhole, iproute2) with apt;
# 2. builds the tests (this is the only step that uses the network: crates.io);
# 3. runs every test inside a fresh network namespace that has nothing but loopback,
#    so no test can reach anything outside 127.0.0.0/8 and ::1.
# Postfix and Dovecot are started by the tests themselves on high loopback ports in
# temporary directories; nothing system-wide is configured or started.
# Extra arguments go to `cargo test` (e.g. tests/run.sh --test faults).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: run as root (the tests start a real Postfix, which needs root)" >&2
  exit 1
fi

packages=(dovecot-core dovecot-lmtpd dovecot-imapd dovecot-sieve dovecot-managesieved postfix iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}"
  # "No configuration": no /etc/postfix/main.cf and no system Postfix is started.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for tool in dovecot sievec doveadm postfix postqueue unshare ip; do
  command -v "$tool" >/dev/null || { echo "tests/run.sh: $tool is missing after install" >&2; exit 1; }
done

cargo build --locked --tests --all-targets
# The network namespace: only loopback exists inside it.
exec unshare --net -- bash -c 'ip link set lo up && exec cargo test --locked --offline --tests "$@"' bash "$@"
