#!/usr/bin/env bash
# Installs the Debian packages airllm.c builds against (needs root or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libpcre2-dev libutf8proc-dev libcjson-dev
      libcurl4-openssl-dev libxxhash-dev libssl-dev libmicrohttpd-dev python3 python3-pip
      openmpi-bin libopenmpi-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
