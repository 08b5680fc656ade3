#!/usr/bin/env bash
# build-seaweedfs.sh VERSION OUT: builds SeaweedFS's `weed` (the S3-compatible
# server the tests start on loopback) from the Go module proxy into OUT.
# `go install module@version` refuses SeaweedFS (its go.mod has replace
# directives), so the module is downloaded into the module cache and built
# there, read-only, with its own go.mod and go.sum: the same pinned versions
# as upstream, checked against the checksum database.
set -euo pipefail
version=${1:?usage: build-seaweedfs.sh VERSION OUT}
out=${2:?usage: build-seaweedfs.sh VERSION OUT}
GO=${GO:-go}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
dir=$("$GO" mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-seaweedfs: module github.com/seaweedfs/seaweedfs@$version not downloaded" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
echo "build-seaweedfs: building weed $version (a few minutes the first time)"
cd "$dir"
GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags="-s -w" -o "$out.tmp" ./weed
mv "$out.tmp" "$out"
"$out" version | head -n 1
