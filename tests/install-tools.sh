#!/usr/bin/env bash
# System tools the CLI tests use besides the broker: bash (completion scripts are loaded in
# it), man-db with groff (the generated man page is rendered with warnings on) and
# Prometheus's promtool (scrapes of /metrics are checked with `promtool check metrics`) and
# util-linux's script (the progress bar is tested on a pseudo-terminal).
# Installed here when missing (Debian/Ubuntu), so a fresh machine needs nothing by hand.
set -euo pipefail
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
# promtool comes from Debian's `prometheus` package. Only its promtool is wanted, not a
# Prometheus server started as a system service: the package is unpacked into a private
# directory and promtool linked into /usr/local/bin.
if ! command -v promtool >/dev/null; then
    dir=/opt/logveil-tests/prometheus
    if [ ! -x "$dir/usr/bin/promtool" ]; then
        $sudo apt-get update -qq
        tmp=$(mktemp -d)
        chmod 755 "$tmp"  # apt downloads as its _apt user
        (cd "$tmp" && apt-get download -qq prometheus)
        $sudo mkdir -p "$dir"
        $sudo dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
        rm -rf "$tmp"
    fi
    $sudo ln -sf "$dir/usr/bin/promtool" /usr/local/bin/promtool
    echo "tools: promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') from Debian's prometheus package"
fi
missing=()
command -v bash >/dev/null || missing+=(bash)
command -v man >/dev/null || missing+=(man-db)
command -v groff >/dev/null || missing+=(groff-base)
command -v script >/dev/null || missing+=(bsdutils)
if [ ${#missing[@]} -eq 0 ]; then
    echo "tools: bash, man, groff, script present"
    exit 0
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
echo "tools: installed ${missing[*]}"
