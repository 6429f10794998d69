#!/usr/bin/env bash
# System tools the CLI tests use besides the broker: bash (completion scripts are loaded in
# it) and man-db with groff (the generated man page is rendered with warnings on). Installed
# here when missing (Debian/Ubuntu), so a fresh machine needs nothing by hand.
set -euo pipefail
missing=()
command -v bash >/dev/null || missing+=(bash)
command -v man >/dev/null || missing+=(man-db)
command -v groff >/dev/null || missing+=(groff-base)
if [ ${#missing[@]} -eq 0 ]; then
    echo "tools: bash, man, groff present"
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
echo "tools: installed ${missing[*]}"
