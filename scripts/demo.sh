#!/usr/bin/env bash
# make demo: the whole sanwatch pipeline on this machine. Starts a Temporal dev
# server, Mailpit and workers, simulates a fleet with injected faults, ingests
# it, creates a Schedule for periodic scans, and prints a summary line.
# Payloads are encrypted with a key made for the demo (data/demo/codec.keys);
# the dev server's UI decodes them through `starter codec-server`.
# DEMO_EXIT=1 stops everything afterwards and exits non-zero if a step failed;
# otherwise the stack stays up until Ctrl-C.
#
# It never hangs in silence: every wait has a bound and says what it waits
# for, and a watchdog stops the demo at once, with the tail of the log, when
# any process it started (Temporal, Mailpit, a worker) exits.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=$PWD/bin
DEMO=${DEMO_DIR:-data/demo}
BOXES=${DEMO_BOXES:-50}
HOURS=${DEMO_HOURS:-48}
FAULTS=${DEMO_FAULTS:-12}
SEED=${DEMO_SEED:-1}
WEAK=${DEMO_WEAK:-0.25} # share of faults injected below threshold: they must not be found
TEMPORAL_PORT=${DEMO_TEMPORAL_PORT:-7233}
UI_PORT=${DEMO_UI_PORT:-8233}
SMTP_PORT=${DEMO_SMTP_PORT:-1025}
MAILPIT_PORT=${DEMO_MAILPIT_PORT:-8025}
CODEC_PORT=${DEMO_CODEC_PORT:-8081}
RECEIVER_PORT=${DEMO_RECEIVER_PORT:-8088}
BATCH_HOURS=${DEMO_BATCH_HOURS:-4} # each box posts one file of this many hours per --every
MAIN_METRICS=127.0.0.1:${DEMO_MAIN_METRICS_PORT:-9090}
ANALYSIS_METRICS=127.0.0.1:${DEMO_ANALYSIS_METRICS_PORT:-9091}
INGEST_TIMEOUT=${DEMO_INGEST_TIMEOUT:-15m}
SCHEDULE_ID=demo-fleet-15m

pids=()     # every background process, stopped at the end
watched=()  # "name|pid|log" of the processes that must stay up
watchdog=""
current=""  # the step running now (see step)

cleanup() {
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  [ -n "$current" ] && kill "$current" 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  # Workers get up to 30 s to finish running activities; then they are killed.
  local deadline=$((SECONDS + 40))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}
fail() {
  echo "demo: FAILED: $*" >&2
  echo "demo: logs are in $DEMO/*.log" >&2
  cleanup
  exit 1
}
# died runs when the watchdog saw a watched process exit: it names it, shows
# the end of its log and stops everything.
died() {
  local name log
  IFS='|' read -r name log <"$DEMO/died" 2>/dev/null || { name=unknown; log=/dev/null; }
  {
    echo
    echo "demo: FAILED: $name exited; the last lines of $log:"
    tail -n 15 "$log" | sed 's/^/  | /'
  } >&3 2>&1 # the script's own stderr: a step may have redirected fd 2
  cleanup
  exit 1
}
exec 3>&2
trap died USR1
trap 'cleanup; exit 130' INT TERM

# start NAME LOG CMD...: runs CMD in the background with its output in LOG,
# and has the watchdog keep an eye on it.
start() {
  local name=$1 log=$2
  shift 2
  "$@" 3>&- >"$log" 2>&1 &
  pids+=($!)
  watched+=("$name|$!|$log")
  start_watchdog
}

# start_watchdog (re)starts the loop that signals this script (USR1) when a
# watched process is gone.
start_watchdog() {
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  local list=("${watched[@]}") me=$$
  (
    while sleep 1; do
      for w in "${list[@]}"; do
        IFS='|' read -r name pid log <<<"$w"
        if ! kill -0 "$pid" 2>/dev/null; then
          echo "$name|$log" >"$DEMO/died"
          kill -USR1 "$me"
          exit 0
        fi
      done
    done
  ) &
  watchdog=$!
}

# step CMD...: runs CMD in the background and waits for it, so that the
# watchdog's signal interrupts the wait at once (bash runs traps only between
# commands, never during a foreground one).
step() {
  "$@" &
  current=$!
  wait "$current"
  local rc=$?
  current=""
  return $rc
}

# wait_for WHAT SECONDS CMD...: retries CMD (each try bounded to 5 s) every
# second until it succeeds, failing the demo with WHAT once SECONDS have
# passed by the clock.
wait_for() {
  local what=$1 secs=$2
  shift 2
  echo "demo: waiting up to ${secs}s for $what"
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    timeout 5 "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  fail "$what: not ready after ${secs}s"
}

rm -rf "$DEMO"
mkdir -p "$DEMO"

export SANWATCH_TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
export SANWATCH_STORE_PATH=$DEMO/sanwatch.db
export SANWATCH_INVENTORY=$DEMO/sim/fleet.yaml
# `starter ingest` uploads the simulated batches to this batch store, where
# the workers read them (ingest.roots is not needed: no path claim checks).
export SANWATCH_BATCHES_URL=$DEMO/batches
export SANWATCH_RECEIVER_ADDR=127.0.0.1:$RECEIVER_PORT
export SANWATCH_SMTP_HOST=127.0.0.1
export SANWATCH_SMTP_PORT=$SMTP_PORT
export SANWATCH_SMTP_RATE_PER_SECOND=${SANWATCH_SMTP_RATE_PER_SECOND:-50}

# Payload encryption: a fresh AES-256 key for this demo, readable by this
# user only, given to every worker and starter through codec.keys_file. The
# codec server lets the UI (and `temporal ... --codec-endpoint`) decode. The
# dev server's UI cannot send a bearer token (the UI passes only an OIDC
# access token, and the dev server has no login), so the demo's codec server
# runs without codec.auth_token_file, which it allows on loopback only.
CODEC_URL=http://127.0.0.1:$CODEC_PORT
( umask 077 && printf 'demo-%s:%s\n' "$(date -u +%Y%m%d%H%M%S)" "$(head -c 32 /dev/urandom | base64)" >"$DEMO/codec.keys" ) ||
  fail "make the demo codec key $DEMO/codec.keys"
export SANWATCH_CODEC_KEYS_FILE=$DEMO/codec.keys
export SANWATCH_CODEC_SERVER_ADDR=127.0.0.1:$CODEC_PORT
export SANWATCH_CODEC_CORS_ORIGINS=http://localhost:$UI_PORT,http://127.0.0.1:$UI_PORT

# sanwatch's search attributes (SanwatchBox, SanwatchSite, ...) are registered
# by the dev server at start; the workers would register them too.
read -ra search_attrs <<<"$("$BIN/starter" search-attributes --dev-server-flags)"
[ "${#search_attrs[@]}" -gt 0 ] || fail "starter search-attributes --dev-server-flags printed nothing"
echo "demo: starting the codec server on $CODEC_URL (key $(cut -d: -f1 "$DEMO/codec.keys") in $DEMO/codec.keys)"
start "the codec server" "$DEMO/codec-server.log" "$BIN/starter" codec-server
echo "demo: starting Temporal dev server (UI on :$UI_PORT decoding through $CODEC_URL, state in $DEMO/temporal.db, search attributes ${search_attrs[*]})"
start "the Temporal dev server" "$DEMO/temporal.log" \
  "$BIN/temporal" server start-dev --port "$TEMPORAL_PORT" --ui-port "$UI_PORT" --ui-codec-endpoint "$CODEC_URL" \
  --db-filename "$DEMO/temporal.db" --log-level error "${search_attrs[@]}"
mailpit_ui=""
if [ -x "$BIN/mailpit" ]; then
  echo "demo: starting Mailpit (SMTP :$SMTP_PORT, UI/API :$MAILPIT_PORT)"
  start "Mailpit" "$DEMO/mailpit.log" \
    "$BIN/mailpit" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --database "$DEMO/mailpit.db"
fi
wait_for "the codec server on $CODEC_URL" 30 curl -sf --max-time 2 "$CODEC_URL/healthz"
wait_for "the Temporal dev server on :$TEMPORAL_PORT" 120 \
  "$BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"

if [ -x "$BIN/mailpit" ]; then
  wait_for "Mailpit on :$MAILPIT_PORT" 30 curl -sf --max-time 2 "http://127.0.0.1:$MAILPIT_PORT/api/v1/info"
  # The inbox page is a script bundle: check that it is really there.
  bundle=$(curl -sf --max-time 5 "http://127.0.0.1:$MAILPIT_PORT/" | grep -o 'dist/app\.js[^"]*' | head -n 1)
  read -r code size < <(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}\n' \
    "http://127.0.0.1:$MAILPIT_PORT/${bundle:-dist/app.js}")
  if [ "$code" = 200 ] && [ "${size:-0}" -gt 100000 ]; then
    mailpit_ui="http://localhost:$MAILPIT_PORT"
    echo "demo: Mailpit web UI ok (dist/app.js: HTTP $code, $size bytes)"
  elif command -v npm >/dev/null 2>&1; then
    echo "demo: Mailpit's web page will be blank: its script bundle answers HTTP $code ($size bytes)." >&2
    echo "demo: bin/mailpit was built without its UI; rebuild it: rm bin/mailpit && make demo" >&2
    [ "${DEMO_EXIT:-0}" = 1 ] && fail "Mailpit web UI missing although npm is here"
  else
    echo "demo: npm is not installed, so Mailpit was built without its web UI: http://localhost:$MAILPIT_PORT" >&2
    echo "demo: will be a blank page. The emails are still received; the summary reads them through the API." >&2
  fi
fi

echo "demo: simulating $BOXES boxes x ${HOURS}h with benign patterns and $FAULTS injected faults (a share of $WEAK below threshold on purpose)"
step "$BIN/starter" simulate --boxes "$BOXES" --hours "$HOURS" --faults "$FAULTS" --seed "$SEED" --weak "$WEAK" \
  --batch-hours "$BATCH_HOURS" --out "$DEMO/sim" || fail "simulate"

echo "demo: starting workers (main+email, and a separate analysis worker)"
start "the main+email worker" "$DEMO/worker-main.log" \
  "$BIN/worker" --queues main,email --metrics-addr "$MAIN_METRICS"
start "the analysis worker" "$DEMO/worker-analysis.log" \
  "$BIN/worker" --queues analysis --metrics-addr "$ANALYSIS_METRICS"
wait_for "the main+email worker's /healthz on $MAIN_METRICS" 60 curl -sf --max-time 2 "http://$MAIN_METRICS/healthz"
wait_for "the analysis worker's /healthz on $ANALYSIS_METRICS" 60 curl -sf --max-time 2 "http://$ANALYSIS_METRICS/healthz"

# The boxes call home: the receiver takes their posts over HTTP (plain HTTP
# on loopback; TLS and client certificates in production, see the README).
echo "demo: starting the receiver on 127.0.0.1:$RECEIVER_PORT"
start "the receiver" "$DEMO/receiver.log" "$BIN/starter" receive
wait_for "the receiver's /healthz on 127.0.0.1:$RECEIVER_PORT" 30 curl -sf --max-time 2 "http://127.0.0.1:$RECEIVER_PORT/healthz"

# Enrol every box: one bearer token each, shown once, kept in a directory
# only this user can read (the tokens never go on a command line).
echo "demo: enrolling $BOXES boxes (one bearer token each, stored hashed)"
mkdir -p "$DEMO/tokens" && chmod 700 "$DEMO/tokens"
for box in $(ls "$DEMO/sim/batches" | sed -E 's/-[0-9]{3}\..*$//' | sort -u); do
  (umask 077 && "$BIN/starter" token create --box "$box" --label demo >"$DEMO/tokens/$box.token" 2>>"$DEMO/tokens.log") ||
    fail "token create --box $box (see $DEMO/tokens.log)"
done

# Every box posts its telemetry in ${BATCH_HOURS}-hour batches, one every
# 2 seconds, all boxes at once: analysis starts as each batch lands.
files=$(ls "$DEMO/sim/batches" | wc -l)
echo "demo: $BOXES boxes posting $files batches over HTTP, one per box every 2s (at most $INGEST_TIMEOUT)"
step timeout "$INGEST_TIMEOUT" "$BIN/starter" post --url "http://127.0.0.1:$RECEIVER_PORT" --tokens-dir "$DEMO/tokens" \
  --every 2s --parallel 16 --wait "$INGEST_TIMEOUT" "$DEMO/sim/batches" >"$DEMO/post.log" 2>&1
post_rc=$?
tail -n 1 "$DEMO/post.log"
[ $post_rc = 124 ] && fail "posting did not finish within $INGEST_TIMEOUT (see $DEMO/post.log)"
[ $post_rc = 0 ] || fail "post (see $DEMO/post.log)"

# A silent box is judged against the whole fleet's newest data, which only a
# scan after the last batch sees: run the first scan now rather than in 15 min.
echo "demo: scanning the fleet once (finds boxes that went silent)"
step timeout 5m "$BIN/starter" scan --id demo-scan-initial --wait-for-worker 60s >"$DEMO/scan.log" 2>&1 ||
  fail "scan (see $DEMO/scan.log)"

echo "demo: creating Schedule $SCHEDULE_ID (a FleetScan every 15 minutes)"
step timeout 1m "$BIN/starter" schedule create --id "$SCHEDULE_ID" --every 15m >"$DEMO/schedule.log" 2>&1 ||
  fail "schedule create (see $DEMO/schedule.log)"

echo
step timeout 1m "$BIN/starter" findings --severity warning >"$DEMO/findings.txt" 2>&1 || fail "findings (see $DEMO/findings.txt)"
tail -n 20 "$DEMO/findings.txt"
echo
mailpit_flag=()
if [ -x "$BIN/mailpit" ]; then
  # Remediation emails are sent asynchronously: demo-report waits for them to settle.
  mailpit_flag=(--mailpit "http://127.0.0.1:$MAILPIT_PORT" --wait 2m)
fi
step timeout 5m "$BIN/starter" demo-report --faults "$DEMO/sim/faults.json" "${mailpit_flag[@]}" >"$DEMO/summary.txt" 2>&1
report_rc=$?
cat "$DEMO/summary.txt"
[ $report_rc = 124 ] && fail "demo-report did not finish within 5m"
echo
echo "Look at it:"
echo "  Temporal UI   http://localhost:$UI_PORT  (workflows ingest-*, their analyze children, remediate-*)"
echo "  Schedules     Temporal UI -> Schedules -> $SCHEDULE_ID: http://localhost:$UI_PORT/namespaces/default/schedules"
echo "  Search        Temporal UI filter, e.g. SanwatchSite = \"par1\" (bin/starter scan --selector site=par1 makes one)"
if [ -n "$mailpit_ui" ]; then
  echo "  Mailpit       $mailpit_ui  (one email per finding)"
elif [ -x "$BIN/mailpit" ]; then
  echo "  Mailpit API   http://localhost:$MAILPIT_PORT/api/v1/messages  (web page blank: built without npm)"
fi
echo "  metrics       http://$MAIN_METRICS/metrics  http://$ANALYSIS_METRICS/metrics"
echo "  encryption    payloads are encrypted (key in $DEMO/codec.keys); the UI decodes through $CODEC_URL, and so does"
echo "                bin/temporal workflow show --workflow-id remediate-... --codec-endpoint $CODEC_URL"
echo "  findings      SANWATCH_STORE_PATH=$DEMO/sanwatch.db bin/starter findings -v"

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  cleanup
  [ $report_rc = 0 ] || { echo "demo: FAILED: the summary does not match the ground truth" >&2; exit 1; }
  exit 0
fi
echo "demo: running; press Ctrl-C to stop everything"
while :; do sleep 3600 & current=$!; wait "$current"; done
