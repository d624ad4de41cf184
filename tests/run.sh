#!/usr/bin/env bash
# Runs coid's whole test suite on a fresh Debian 12 / Ubuntu machine, as root:
#   sudo tests/run.sh
# 1. installs what the tests need with apt (tests/install-packages.sh: Postfix, Dovecot
#    with Pigeonhole, iproute2, util-linux, procps, python3-venv), and the Python tools
#    in tests/requirements.txt into a venv with pip;
# 2. builds the tests (installs and this build are the only steps that use the network);
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

tests/install-packages.sh

# Python tools the tests run (tests/requirements.txt: the Delta Chat client, http_ece),
# pinned, in a venv from PyPI (the network is allowed here, for installs only). Reused
# while its stamp matches the requirements file.
venv="$PWD/target/testvenv"
stamp="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
mkdir -p target
exec 9>target/testvenv.lock
flock 9   # two runs at once must not build the venv over each other
if [ "$(cat "$venv/.coid-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "tests/run.sh: installing tests/requirements.txt into $venv"
  rm -rf "$venv"
  if ! { python3 -m venv "$venv" &&
         "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt &&
         "$venv/bin/deltachat-rpc-server" --version >/dev/null 2>&1 &&
         "$venv/bin/python" -c 'import http_ece, cryptography'; }; then
    echo "tests/run.sh: FAILED to install tests/requirements.txt from PyPI into $venv;" \
         "tests/deltachat_live.rs and the push tests need it" >&2
    exit 1
  fi
  echo "$stamp" > "$venv/.coid-stamp"
fi
flock -u 9
export COID_DC_PYTHON="$venv/bin/python" COID_TEST_PYTHON="$venv/bin/python"

cargo build --locked --tests --all-targets
# All test targets, unless the arguments pick targets themselves (`--test NAME`).
targets=(--tests)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    --test|--test=*|--lib|--bin|--bin=*|--bins|--tests|--all-targets) targets=() ;;
  esac
done
# The network namespace: only loopback exists inside it.
in_netns() {
  unshare --net -- bash -c 'ip link set lo up && exec "$@"' bash "$@"
}
in_netns cargo test --locked --offline "${targets[@]}" "$@"
# The store matrix: the whole suite ran on the store it was given (SQLite unless
# COID_TEST_STORE says otherwise); the tests whose coids read and write the state run
# again with every coid on PostgreSQL (tests/common/postgres.rs). The store's unit
# tests and tests/multinode.rs run on both stores, or on PostgreSQL, by themselves.
if [ $# -eq 0 ] && [ "${COID_TEST_STORE:-sqlite}" = sqlite ]; then
  echo "tests/run.sh: the tests that touch the state store again, on PostgreSQL"
  store_tests=(cli metadata_dict push_flow deltachat_push seen_mode postfix_coid_dovecot)
  # One of them holds SQLite's file lock from outside: it ran above, on SQLite.
  sqlite_only=(a_held_state_lock_refuses_writes_and_answers_reads)
  COID_TEST_STORE=postgresql in_netns cargo test --locked --offline \
    $(printf -- '--test %s ' "${store_tests[@]}") -- \
    $(printf -- '--skip %s ' "${sqlite_only[@]}")
fi
