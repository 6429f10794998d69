#!/usr/bin/env bash
# Installs the tansu broker (Apache-Kafka-compatible, AGPL: run as a separate process, never
# linked) that the Kafka tests start. Skipped when the right version is installed. The first
# install compiles for about 10 minutes on 2 cores.
set -euo pipefail
VERSION=0.6.0
BIN="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
    exit 0
fi
echo "installing tansu $VERSION (once per machine, ~10 min)..." >&2
cargo install tansu --version "$VERSION" --locked --features libsql
