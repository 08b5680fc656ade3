#!/usr/bin/env bash
# record-histories.sh: run the end-to-end tests that record workflow
# histories and add what they recorded to the replay corpus
# (workflows/testdata/histories), named <Type>-<branch>-<git rev>.json, so
# histories of older code stay beside the new ones: a workflow that started on
# older code may still be running, and replaying it must keep passing.
#
#   scripts/record-histories.sh [go test -run regexp]
#
# Then run `go test ./workflows -run TestReplayRecordedHistories`, look at
# what was added (git status) and commit the histories of the branches you
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-TestTemporalCLICompatibility|TestFleetScanSurvivesAKilledAnalysisWorker|TestRemediateReminderEscalationResolve|TestRemediateUndeliverable|TestRemediateContinuesAsNewOnRealServer|TestScanWithoutAnalysisWorkerEndsWithFailedShards|TestBoundedBranchesEndToEnd|TestRetention}"
rev="$(git rev-parse --short HEAD 2>/dev/null || date +%Y%m%d)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
SANWATCH_RECORD_HISTORIES="$tmp" SANWATCH_TEMPORAL_CLI="${SANWATCH_TEMPORAL_CLI:-$PWD/bin/temporal}" \
	${GO:-go} test -count=1 -timeout 20m -run "$run" ./e2e/
dest=workflows/testdata/histories
n=0
for f in "$tmp"/*.json; do
	[ -e "$f" ] || continue
	name="$(basename "$f" .json)"
	cp "$f" "$dest/$name-$rev.json"
	cp "$tmp/$name.id" "$dest/$name-$rev.id"
	echo "record-histories: added $dest/$name-$rev.json"
	n=$((n + 1))
done
echo "record-histories: $n histories recorded at $rev; now: go test ./workflows -run TestReplayRecordedHistories"
