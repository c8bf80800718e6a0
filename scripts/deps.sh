#!/usr/bin/env bash
# Installs the Debian packages `make demo` and `make test` need, when missing.
# Safe to run again; does nothing when everything is there.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have /usr/sbin/mosquitto || need+=(mosquitto)
have mosquitto_sub && have mosquitto_pub || need+=(mosquitto-clients)
have ip || need+=(iproute2)
have stdbuf || need+=(coreutils)

if ! have go && [ ! -x /usr/local/go/bin/go ]; then
  echo "deps: Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install)" >&2
  exit 1
fi

[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "deps: missing ${need[*]}; run as root: apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The broker is run by the tests and the demo, never as a system service.
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
