#!/usr/bin/env bash
# Installs what the throughput bench's Vectorscan row needs (Debian/Ubuntu): the Vectorscan
# library and headers, pkg-config, a C compiler. Without them the bench prints its other
# rows and says the Vectorscan row was left out.
set -euo pipefail
if pkg-config --exists libhs 2>/dev/null && command -v cc >/dev/null; then
    echo "vectorscan: already installed ($(pkg-config --modversion libhs))"
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libvectorscan-dev pkg-config gcc
echo "vectorscan: installed ($(pkg-config --modversion libhs))"
