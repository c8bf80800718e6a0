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
have /usr/sbin/avahi-daemon || need+=(avahi-daemon)   # discovery tests, inside namespaces only
have openssl || need+=(openssl)
have qemu-aarch64-static && have qemu-arm-static || need+=(qemu-user-static)   # make test-arm

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
# The broker and Avahi are run by the tests and the demo (Avahi only inside
# test namespaces), never as system services: keep the packages' init
# scripts from starting them, so nothing multicasts on this machine's own
# interfaces.
cleanup=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  cleanup="/usr/sbin/policy-rc.d"
fi
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
[ -n "$cleanup" ] && $sudo rm -f "$cleanup"
