#!/usr/bin/env bash
# Run the whole workspace test suite on a Python the host does not have (3.14, 3.15), inside a
# Debian sid chroot. Needs a Debian host, root and debootstrap (Debian's bookworm has no Python 3.14;
# sid's builds need a newer glibc, so they run in a chroot that shares the host's loopback and its
# servers).
#
#   sudo bash tools/matrix/python-sid.sh            # Python 3.14, the committed HEAD
#   sudo bash tools/matrix/python-sid.sh 3.15 -k sqlite   # another Python; the rest goes to pytest
#
# First run: debootstrap of sid (about 20-40 s) and the packages below (about 15 s) into
# $QUEUERT_MATRIX_DIR/sid (default: queuert-matrix/sid in $TMPDIR). Every run: a clone of HEAD (committed work
# only) bind-mounted at /src/repo, `uv sync --frozen` into /src/venv-<version>, then pytest -n 3.
# The tests reach the host's servers (PostgreSQL 15, Redis, NATS) over 127.0.0.1; the resilience tests
# that start servers of their own use the chroot's redis-server, nats-server and PostgreSQL 18.
set -euo pipefail

version=${1:-3.14}
[ $# -gt 0 ] && shift
repo=$(cd "$(dirname "$0")/../.." && pwd)
root=${QUEUERT_MATRIX_DIR:-${TMPDIR:-/tmp}/queuert-matrix}/sid
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if [ "$(id -u)" != 0 ]; then
  echo "python-sid.sh: needs root (debootstrap, chroot, mounts)" >&2
  exit 2
fi
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "== debootstrap sid into $root"
  mkdir -p "$root"
  debootstrap --variant=minbase sid "$root" "$mirror" >"$root.debootstrap.log" 2>&1
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" # never start services
  chmod +x "$root/usr/sbin/policy-rc.d"
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" 2>/dev/null || true; done
  [ -n "${clone:-}" ] && rm -rf "$clone"
}
trap cleanup EXIT
trap "exit 130" INT TERM
mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc" && mounted+=("$root/proc"); }
mountpoint -q "$root/dev" || { mount --bind /dev "$root/dev" && mounted+=("$root/dev"); }

# the host's CA bundle (an egress proxy's CA, if any), again after apt may have rewritten it
certs() { mkdir -p "$root/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"; }
certs
if ! chroot "$root" sh -c "command -v python$version && command -v redis-server && command -v nats-server && test -x /usr/lib/postgresql/18/bin/initdb" >/dev/null; then
  echo "== apt-get install python$version and the servers of the resilience tests"
  # sid's Release file on some mirrors is expired: accept it
  chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "python$version" "python$version-venv" redis-server nats-server postgresql-18 >/dev/null
  certs
fi

# uv is one static binary: copy the real one in (not a pyenv shim, which is a shell script)
uv_path='import os, sysconfig; print(os.path.join(sysconfig.get_path("scripts"), "uv"))'
[ -x "$(python3 -c "$uv_path")" ] || python3 -m pip install -q uv
cp "$(python3 -c "$uv_path")" "$root/usr/local/bin/uv"

clone=$(mktemp -d)
git clone -q "$repo" "$clone/repo"
mkdir -p "$root/src/repo"
mount --bind "$clone/repo" "$root/src/repo" && mounted+=("$root/src/repo")

echo "== pytest on Python $version ($(chroot "$root" "python$version" --version)), HEAD $(git -C "$repo" rev-parse --short HEAD)"
chroot "$root" env HOME=/root SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_PYTHON_DOWNLOADS=never \
  UV_PROJECT_ENVIRONMENT="/src/venv-$version" QUEUERT_PG_BIN=/usr/lib/postgresql/18/bin \
  sh -c "cd /src/repo && uv sync --frozen --quiet --python /usr/bin/python$version && \
         uv run --no-sync --python /usr/bin/python$version pytest -q -n 3 -p no:cacheprovider $*"
