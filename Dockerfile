# syntax=docker/dockerfile:1
#
# sanwatch image: the worker and starter binaries, the firmware advisories and
# a non-root user, on Alpine (busybox wget for the health check, CA
# certificates for TLS to Temporal Cloud or an SMTP relay, sh and awk for
# external analyzers). docker-compose.yml runs it as `worker` and `starter`.
#
#   docker build -t sanwatch .
#   docker run --rm sanwatch starter --help

# GO_VERSION matches the go line of go.mod.
ARG GO_VERSION=1.26.8
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The sqlite driver (modernc.org/sqlite) is pure Go, so the binaries are static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ ./worker ./starter

FROM alpine:${ALPINE_VERSION}
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 sanwatch \
 && adduser -S -D -H -u 10001 -G sanwatch -h /data sanwatch \
 && mkdir -p /data /etc/sanwatch /var/lib/sanwatch/codec \
 && chown sanwatch:sanwatch /data /var/lib/sanwatch/codec \
 && chmod 0700 /var/lib/sanwatch/codec
COPY --from=build /out/worker /out/starter /usr/local/bin/
COPY config/advisories.yaml /etc/sanwatch/advisories.yaml
COPY config/sanwatch.example.yaml /etc/sanwatch/sanwatch.example.yaml
ENV SANWATCH_ADVISORIES=/etc/sanwatch/advisories.yaml \
    SANWATCH_DATA_DIR=/data \
    SANWATCH_INGEST_ROOTS=/data
# /data and /var/lib/sanwatch/codec (the payload key, made by `starter
# codec-keygen`) are owned by sanwatch, so empty named volumes mounted there
# start out writable by the non-root user (Docker copies the ownership).
WORKDIR /data
USER 10001:10001
EXPOSE 9090
CMD ["worker"]
