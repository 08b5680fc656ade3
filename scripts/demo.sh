#!/usr/bin/env bash
# make demo: the whole sanwatch pipeline on this machine. Starts a Temporal dev
# server, Mailpit and workers, simulates a fleet with injected faults, ingests
# it, and prints a summary line. DEMO_EXIT=1 stops everything afterwards and
# exits non-zero if a step failed; otherwise the stack stays up until Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=$PWD/bin
DEMO=${DEMO_DIR:-data/demo}
BOXES=${DEMO_BOXES:-50}
HOURS=${DEMO_HOURS:-48}
FAULTS=${DEMO_FAULTS:-12}
SEED=${DEMO_SEED:-1}
TEMPORAL_PORT=${DEMO_TEMPORAL_PORT:-7233}
UI_PORT=${DEMO_UI_PORT:-8233}
SMTP_PORT=${DEMO_SMTP_PORT:-1025}
MAILPIT_PORT=${DEMO_MAILPIT_PORT:-8025}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
fail() {
  echo "demo: FAILED: $*" >&2
  echo "demo: logs are in $DEMO/*.log" >&2
  cleanup
  exit 1
}
trap 'cleanup; exit 130' INT TERM

rm -rf "$DEMO"
mkdir -p "$DEMO"

export SANWATCH_TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
export SANWATCH_STORE_PATH=$DEMO/sanwatch.db
export SANWATCH_INVENTORY=$DEMO/sim/fleet.yaml
export SANWATCH_SMTP_HOST=127.0.0.1
export SANWATCH_SMTP_PORT=$SMTP_PORT
export SANWATCH_SMTP_RATE_PER_SECOND=${SANWATCH_SMTP_RATE_PER_SECOND:-50}

echo "demo: starting Temporal dev server (UI on :$UI_PORT, state in $DEMO/temporal.db)"
"$BIN/temporal" server start-dev --port "$TEMPORAL_PORT" --ui-port "$UI_PORT" \
  --db-filename "$DEMO/temporal.db" --log-level error >"$DEMO/temporal.log" 2>&1 &
pids+=($!)
if [ -x "$BIN/mailpit" ]; then
  echo "demo: starting Mailpit (SMTP :$SMTP_PORT, UI/API :$MAILPIT_PORT)"
  "$BIN/mailpit" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --database "$DEMO/mailpit.db" >"$DEMO/mailpit.log" 2>&1 &
  pids+=($!)
fi
for i in $(seq 1 60); do
  "$BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" >/dev/null 2>&1 && break
  [ "$i" = 60 ] && fail "Temporal dev server did not become healthy (see $DEMO/temporal.log)"
  sleep 1
done

echo "demo: simulating $BOXES boxes x ${HOURS}h with $FAULTS injected faults"
"$BIN/starter" simulate --boxes "$BOXES" --hours "$HOURS" --faults "$FAULTS" --seed "$SEED" \
  --batch-hours 24 --out "$DEMO/sim" || fail "simulate"

echo "demo: starting workers (main+email, and a separate analysis worker)"
"$BIN/worker" --queues main,email --metrics-addr 127.0.0.1:9090 >"$DEMO/worker-main.log" 2>&1 &
pids+=($!)
"$BIN/worker" --queues analysis --metrics-addr 127.0.0.1:9091 >"$DEMO/worker-analysis.log" 2>&1 &
pids+=($!)
sleep 1

echo "demo: ingesting $DEMO/sim/batches"
"$BIN/starter" ingest --parallel 8 "$DEMO/sim/batches" >"$DEMO/ingest.log" 2>&1
ingest_rc=$?
tail -n 1 "$DEMO/ingest.log"
[ $ingest_rc = 0 ] || fail "ingest (see $DEMO/ingest.log)"

echo
"$BIN/starter" findings --severity warning | tail -n 20
echo
mailpit_flag=()
if [ -x "$BIN/mailpit" ]; then
  # Remediation emails are sent asynchronously: demo-report waits for them to settle.
  mailpit_flag=(--mailpit "http://127.0.0.1:$MAILPIT_PORT" --wait 2m)
fi
summary=$("$BIN/starter" demo-report --faults "$DEMO/sim/faults.json" "${mailpit_flag[@]}" 2>&1)
report_rc=$?
echo "$summary"
echo
echo "Look at it:"
echo "  Temporal UI   http://localhost:$UI_PORT  (workflows ingest-*, their analyze children)"
[ -x "$BIN/mailpit" ] && echo "  Mailpit       http://localhost:$MAILPIT_PORT"
echo "  metrics       http://127.0.0.1:9090/metrics  http://127.0.0.1:9091/metrics"
echo "  findings      SANWATCH_STORE_PATH=$DEMO/sanwatch.db bin/starter findings -v"

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  cleanup
  [ $report_rc = 0 ] || { echo "demo: FAILED: the summary does not match the ground truth" >&2; exit 1; }
  exit 0
fi
echo "demo: running; press Ctrl-C to stop everything"
wait
