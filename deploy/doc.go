// Package deploy holds the files docker-compose.yml mounts into the stack
// (deploy/sanwatch.yaml, the Temporal schema and namespace scripts under
// deploy/temporal) and the test that checks docker-compose.yml and the
// Dockerfile against sanwatch's configuration keys and command lines, without
// needing a Docker engine.
package deploy
