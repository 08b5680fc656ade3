#!/usr/bin/env bash
# build-mailpit.sh VERSION OUT: builds Mailpit from its Go module source, with
# its web UI. `go install` alone embeds an empty UI (Mailpit's release builds
# bundle the Vue app with npm and esbuild first), so http://localhost:8025 is a
# blank page. Here the module source is copied to a scratch directory, the UI
# is built with the machine's Node.js and npm (package-lock.json and the
# esbuild config ship in the module), and the binary is built there with the
# assets embedded. Without npm, or if the UI build fails, it falls back to
# `go install` and says the page will be blank: the SMTP server and the API,
# which the demo uses, work either way.
set -euo pipefail
VERSION=${1:?usage: build-mailpit.sh VERSION OUT}
OUT=${2:?usage: build-mailpit.sh VERSION OUT}
MOD=github.com/axllent/mailpit
GO=${GO:-go}

fallback() {
  echo "mailpit: $*; building without the web UI: http://localhost:8025 will be a blank page (emails are still received and the API works)" >&2
  GOBIN=$(dirname "$OUT") "$GO" install "$MOD@$VERSION"
  exit 0
}

command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || fallback "npm or node not found"

"$GO" mod download "$MOD@$VERSION"
src="$("$GO" env GOMODCACHE)/$MOD@$VERSION"
[ -f "$src/package-lock.json" ] || fallback "no package-lock.json in $src"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailpit-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$src/." "$work"
chmod -R u+w "$work"

echo "mailpit: building the web UI with npm (node $(node --version), npm $(npm --version))"
(cd "$work" && timeout 15m npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1 &&
  timeout 5m npm run build >>"$work/npm.log" 2>&1) ||
  { tail -n 20 "$work/npm.log" >&2; fallback "npm could not build the UI (log above)"; }
[ -s "$work/server/ui/dist/app.js" ] || fallback "the UI build left no server/ui/dist/app.js"

echo "mailpit: building $OUT $VERSION with the UI embedded"
(cd "$work" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X $MOD/config.Version=$VERSION" -o "$OUT" .) ||
  fallback "go build of the source with the UI failed"
