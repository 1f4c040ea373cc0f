#!/usr/bin/env bash
# Installs the Debian packages smsgw runs on, only those missing:
# Java (Kafka broker), Maven (fetches the broker's jars), PostgreSQL server,
# Kannel (an independent SMPP peer for the interop tests), Prometheus (`make
# observe` and the dashboard test), Chromium and its WebDriver (the console test),
# Node.js with npm and a JDK (node-smpp and jsmpp, third-party SMPP peers of the
# interop tier), HAProxy (the customers' VIP in front of the network-namespace
# hosts of cluster/netns.py), iproute2 (`ip netns`) and Redis (the Ray head's GCS
# fault tolerance, SMSGW_RAY_REDIS=embedded and its test).
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${SMSGW_SKIP_KANNEL:-0}" != 1 ]; then
  command -v bearerbox >/dev/null || [ -x /usr/sbin/bearerbox ] || need+=(kannel)
fi
command -v prometheus >/dev/null || need+=(prometheus)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ "${SMSGW_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "smsgw: installing Debian packages: ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "smsgw: please install as root: apt-get install ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps Debian from starting the packages' own system services
# (a system PostgreSQL on 5432, Kannel's bearerbox on 13000, Redis on 6379): smsgw
# runs its own.
$SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "${need[@]}" >/dev/null
