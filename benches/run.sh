#!/usr/bin/env bash
# Runs coid's benchmarks (benches/README.md) on a Debian 12 / Ubuntu machine, as root:
#   sudo benches/run.sh
# 1. installs Postfix and Dovecot (with Pigeonhole) with apt if they are missing;
# 2. builds the benchmarks with the bench (release) profile; this is the only step
#    that uses the network (crates.io);
# 3. runs them inside a fresh network namespace that has nothing but loopback:
#    `classify` (in-process CPU cost per message), then `e2e` (Postfix → Dovecot
#    against Postfix → coid → Dovecot, and coid's memory), then `push` (Web Push:
#    pushes per second, delivery-to-push latency, mail throughput with push on and
#    off), several minutes.
# Postfix, Dovecot and coid are started by the benchmark on high loopback ports in
# temporary directories; nothing system-wide is configured or started.
# Arguments replace the default `--bench classify --bench e2e --bench push` given to
# `cargo bench` (e.g. benches/run.sh --bench push). COID_BENCH_QUICK=1 runs a tenth of the messages.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "benches/run.sh: run as root (the benchmark starts a real Postfix, which needs root)" >&2
  exit 1
fi

packages=(dovecot-core dovecot-lmtpd dovecot-imapd dovecot-sieve postfix iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "benches/run.sh: installing ${missing[*]}"
  # "No configuration": no /etc/postfix/main.cf and no system Postfix is started.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--bench classify --bench e2e --bench push)
cargo bench --locked --no-run "${args[@]}"
# The network namespace: only loopback exists inside it.
exec unshare --net -- bash -c 'ip link set lo up && exec cargo bench --locked --offline "$@"' \
  bash "${args[@]}"
