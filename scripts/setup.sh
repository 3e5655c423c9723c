#!/usr/bin/env bash
# Installs what xvswitch needs on a fresh Debian 12 machine (as root) and builds it.
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(iproute2 iputils-ping iperf3 ethtool tcpdump tshark busybox-static python3
      openvswitch-switch ovn-central ovn-host procps psmisc util-linux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts ovs-vswitchd/ovsdb-server as a service where it can; our tests and perf start
# their own private instances, so the system ones are not needed (and may not be running).

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
echo "setup: building (release)"
cargo build --release --workspace --quiet
