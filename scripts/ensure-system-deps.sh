#!/usr/bin/env bash
# Installs the real servers upkeep's tests and demo talk to, from Debian's packages.
# Idempotent: installs only what is missing. Not root: prints the exact command and fails.
set -euo pipefail

# package -> a file that proves it is installed
declare -A PROBE=(
  [postgresql]=/usr/lib/postgresql/15/bin/initdb
  [redis-server]=/usr/bin/redis-server
  [docker.io]=/usr/sbin/dockerd
  [prometheus]=/usr/bin/promtool
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [busybox-static]=/usr/bin/busybox
  # The deploy tests (test/deploy/): a Debian root for the local base image, systemd-analyze and
  # systemd as PID 1 in a container, and the doc's curl commands.
  [debootstrap]=/usr/sbin/debootstrap
  [systemd]=/usr/bin/systemd-analyze
  [curl]=/usr/bin/curl
  # test/product/schedule-skew.test.ts runs one replica with its clock 30 s ahead.
  [faketime]=/usr/bin/faketime
  # The TLS tests (test/fixtures/postgres-tls.ts) make a CA and a server certificate.
  [openssl]=/usr/bin/openssl
)
if [[ "${UPKEEP_BENCH_DEPS:-}" == 1 ]]; then
  PROBE[prometheus-postgres-exporter]=/usr/bin/prometheus-postgres-exporter
  PROBE[prometheus-redis-exporter]=/usr/bin/prometheus-redis-exporter
fi

missing=()
for package in "${!PROBE[@]}"; do
  [[ -e "${PROBE[$package]}" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

IFS=$'\n' missing=($(sort <<<"${missing[*]}")); unset IFS
command="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "upkeep needs these system packages: ${missing[*]}" >&2
  echo "Run as root:  sudo sh -c '$command'" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}" >&2
apt-get update -qq
# The Debian packages try to start their services; there is no init system to do it, and upkeep
# starts its own throwaway servers, so policy-rc.d tells the maintainer scripts not to.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; created_policy=1; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
[[ $created_policy -eq 1 ]] && rm -f $policy
exit 0
