#!/usr/bin/env bash
# Checks a logveil built with --no-default-features: it redacts files and stdin, it links no
# librdkafka, and a kafka:// input or output is a clear error (exit 2), not a crash.
set -euo pipefail
BIN="$1"
fail() { echo "no-kafka build: $*" >&2; exit 1; }
out=$(printf 'login ok password=Zq0000001Xw\n' | "$BIN" run 2>/dev/null)
case "$out" in
    *"password=[REDACTED:"*) ;;
    *) fail "stdin was not redacted: ${out:0:12}…" ;;
esac
if nm -C "$BIN" 2>/dev/null | grep -q ' rd_kafka_new'; then
    fail "the binary links librdkafka"
fi
for args in "run kafka://127.0.0.1:9/t" "run - -o kafka://127.0.0.1:9/t"; do
    set +e
    err=$(echo x | "$BIN" $args 2>&1 >/dev/null)
    code=$?
    set -e
    [ "$code" = 2 ] || fail "'$args' exited $code, not 2"
    case "$err" in
        *"built without Kafka support"*) ;;
        *) fail "'$args': unclear error: $err" ;;
    esac
done
echo "no-kafka build: redacts stdin, no librdkafka, kafka:// refused clearly"
