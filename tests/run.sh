#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, CLI end-to-end tests, rule examples,
# and a quick run of the benchmark code. Installs nothing beyond the Rust toolchain today;
# later services (the Kafka broker) are installed and started from here too.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets
echo "== logveil rules check"
cargo run --quiet -- rules check
