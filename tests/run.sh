#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, CLI end-to-end tests, Kafka end-to-end
# tests against a real broker, rule examples, and a quick run of the benchmark code.
# The Kafka tests need the tansu broker: installed here when missing (once per machine, ~10
# min); each Kafka test starts its own broker on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== broker for the Kafka tests (tansu)"
bash tests/install-tansu.sh
echo "== tools for the CLI tests (bash, man, groff)"
bash tests/install-tools.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets
echo "== logveil rules check"
cargo run --quiet -- rules check
echo "== cargo build --no-default-features (file/stdin only: no librdkafka, no OpenSSL)"
cargo clippy --quiet --no-default-features --target-dir target/no-kafka -- -D warnings
cargo build --quiet --no-default-features --target-dir target/no-kafka
bash tests/no-kafka.sh target/no-kafka/debug/logveil
