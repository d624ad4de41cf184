#!/usr/bin/env bash
# Capture Delta Chat messages through the shared loopback harness (Postfix -> LMTP dump hop
# -> Dovecot), everything inside a loopback-only network namespace.
#   Usage (root): tests/deltachat/capture.sh [OUT_DIR]      (default /tmp/dc-capture)
#   Env: HARNESS (default /work/shared/harness), VENV (default /tmp/dcvenv)
# Result: OUT_DIR/summary.json (driver), OUT_DIR/run/lmtp-dump/NNNNNN.{eml,json},
#         OUT_DIR/keys/<name>/ (exported keys, for decrypting), OUT_DIR/run/log/*.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-/work/shared/harness}
VENV=${VENV:-/tmp/dcvenv}
OUT=$(realpath -m "${1:-/tmp/dc-capture}")
if [ "${DC_IN_NETNS:-}" != 1 ]; then
  # re-exec ourselves in a new network namespace that has only loopback
  exec unshare -n env DC_IN_NETNS=1 HARNESS="$HARNESS" VENV="$VENV" bash "$0" "$OUT"
fi
ip link set lo up
if [ "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')" != lo ]; then echo "not in a loopback-only netns" >&2; exit 2; fi
mkdir -p "$OUT"
export RUN_DIR="$OUT/run" TEST_USERS="alice bob carol"
source "$HARNESS/env.sh"
trap '"$HARNESS/stop.sh" postfix proxy dovecot' EXIT
FRESH=1 "$HARNESS/start.sh" dovecot proxy postfix || exit 2
rm -rf "$OUT/accounts" "$OUT/keys"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" "$HERE/dc_scenario.py" \
  --imap-host 127.0.0.1 --imap-port "$IMAP_PORT" --smtp-host 127.0.0.1 --smtp-port "$SMTP_PORT" \
  --account "alice@$MAIL_DOMAIN" --account "bob@$MAIL_DOMAIN" --account "carol@$MAIL_DOMAIN" \
  --password "$TEST_PASSWORD" --output "$OUT/summary.json" \
  --dump-dir "$RUN_DIR/lmtp-dump" --accounts-dir "$OUT/accounts" --export-keys "$OUT/keys" \
  ${DC_ARGS:-}
rc=$?
echo "capture: driver exit code $rc; dump: $RUN_DIR/lmtp-dump ($(ls "$RUN_DIR/lmtp-dump" 2>/dev/null | grep -c '\.eml$') messages)" >&2
exit $rc
