#!/usr/bin/env bash
# Build an offline bundle for a Raspberry Pi (arm64, Pi OS / Debian 12 bookworm, Python 3.11) on any machine with
# internet access. Run as root from a checkout of the project:
#
#   systemd/bundle.sh [--out DIR] [--arm64-root ROOT] [--mirror URL] [--tar]
#
# DIR (default ./kiosk-bundle) receives kiosk/ (the project) with kiosk/wheelhouse/: every Python package the
# kiosk needs as an aarch64 wheel for CPython 3.11 (binary wheels as published, pyscard and lgpio compiled for
# aarch64, pure-Python sdists built), plus pip's build tools. On the Pi, with no network:
#
#   sudo kiosk/systemd/install.sh --find-links "$PWD/kiosk/wheelhouse"
#
# The wheels are built on arm64 itself: natively on an arm64 machine, else inside an arm64 Debian 12 root run
# through qemu-user-static (binfmt_misc): --arm64-root ROOT uses an existing one, otherwise a temporary root is
# made with debootstrap (a few minutes) from --mirror (default: this machine's Debian mirror) and removed after.
# --tar also writes DIR.tar.gz. Debian packages are not bundled: a Pi OS image has them or its own mirror.
# See docs/appliance.md ("Closed networks").
set -euo pipefail

SOURCE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$PWD/kiosk-bundle
ARM64_ROOT="" MIRROR="" TAR=""
BUILD_PACKAGES=(python3-venv python3-dev gcc swig libpcsclite-dev)

say() { printf 'bundle.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

host_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Let the kernel run aarch64 programs through qemu-user-static (F: the interpreter is opened now, so it also
# works inside a chroot).
register_qemu() {
    local binfmt=/proc/sys/fs/binfmt_misc qemu=/usr/bin/qemu-aarch64-static
    [ -x "$qemu" ] || die "qemu-user-static is not installed (apt-get install qemu-user-static)"
    [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc"
    [ -e "$binfmt/qemu-aarch64" ] && return 0
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':F' \
        >"$binfmt/register" || die "the kernel refused the binfmt_misc registration of qemu-aarch64"
}

# Run a command as root inside ROOT with the host's CA bundle (networks that intercept TLS) and resolver.
in_root() {
    chroot "$ARM64_ROOT" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/kiosk-bundle-ca.crt \
        SSL_CERT_FILE=/etc/kiosk-bundle-ca.crt "$@"
}

make_root() {
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    register_qemu
    ARM64_ROOT=$WORK/root
    say "making an arm64 Debian 12 root from ${MIRROR:=$(host_mirror)} (a few minutes)"
    debootstrap --arch=arm64 --variant=minbase bookworm "$ARM64_ROOT" "$MIRROR" >&2
    mount -t proc proc "$ARM64_ROOT/proc"
}

build_wheels_in_root() {
    local inside=/tmp/kiosk-bundle
    cp /etc/resolv.conf "$ARM64_ROOT/etc/resolv.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$ARM64_ROOT/etc/kiosk-bundle-ca.crt"
    local missing=()
    for pkg in "${BUILD_PACKAGES[@]}"; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's, not the shell's
        in_root dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing the build tools in the arm64 root: ${missing[*]}"
        in_root apt-get update -qq >&2
        in_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    rm -rf "$ARM64_ROOT$inside"
    mkdir -p "$ARM64_ROOT$inside"
    cp -a "$OUT/kiosk" "$ARM64_ROOT$inside/src"
    rm -rf "$ARM64_ROOT$inside/src/wheelhouse"
    say "building the aarch64 wheels (pip wheel under emulation)"
    in_root sh -c "python3 -m venv $inside/venv && $inside/venv/bin/pip wheel --quiet --disable-pip-version-check \
        --wheel-dir $inside/wheelhouse 'setuptools>=77' wheel pip '$inside/src[pi]'" >&2
    cp -a "$ARM64_ROOT$inside/wheelhouse/." "$OUT/kiosk/wheelhouse/"
    in_root python3 -c 'import platform, sys; print(platform.machine(), sys.implementation.cache_tag)' >"$WORK/platform"
    rm -rf "$ARM64_ROOT$inside"
}

build_wheels_here() {
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" wheel --quiet --disable-pip-version-check --wheel-dir "$OUT/kiosk/wheelhouse" \
        'setuptools>=77' wheel pip "$OUT/kiosk[pi]" >&2
    python3 -c 'import platform, sys; print(platform.machine(), sys.implementation.cache_tag)' >"$WORK/platform"
}

main() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) OUT=${2:?--out needs a folder}; shift ;;
            --arm64-root) ARM64_ROOT=${2:?--arm64-root needs a folder}; shift ;;
            --mirror) MIRROR=${2:?--mirror needs a URL}; shift ;;
            --tar) TAR=1 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
    WORK=$(mktemp -d)
    trap 'mountpoint -q "$WORK/root/proc" && umount -l "$WORK/root/proc"; rm -rf "$WORK"' EXIT
    say "copying the project to $OUT/kiosk"
    rm -rf "$OUT/kiosk"
    mkdir -p "$OUT/kiosk/wheelhouse"
    if [ -d "$SOURCE/.git" ] && command -v git >/dev/null; then
        (cd "$SOURCE" && git ls-files -z | xargs -0 cp --parents -t "$OUT/kiosk" 2>/dev/null) || true
    else
        tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' \
            --exclude=./kiosk-bundle -cf - . | tar -C "$OUT/kiosk" -xf -
    fi
    if [ "$(uname -m)" = aarch64 ] && [ -z "$ARM64_ROOT" ]; then
        build_wheels_here
    else
        [ "$(id -u)" -eq 0 ] || die "run as root (an arm64 root is needed to build the aarch64 wheels)"
        if [ -n "$ARM64_ROOT" ]; then register_qemu; else make_root; fi
        build_wheels_in_root
    fi
    rm -f "$OUT"/kiosk/wheelhouse/mynumber_kiosk-*.whl  # install.sh builds the kiosk itself from kiosk/
    read -r machine tag <"$WORK/platform"
    [ "$machine" = aarch64 ] || die "the wheels were built for $machine, not aarch64"
    {
        echo "# Offline wheelhouse made by systemd/bundle.sh on $(date -u +%Y-%m-%dT%H:%MZ) for $machine $tag."
        echo "# install.sh --find-links <this folder> installs from it alone (pip --no-index)."
        find "$OUT/kiosk/wheelhouse" -maxdepth 1 -name '*.whl' -printf '%f\n' | sort
    } >"$OUT/kiosk/wheelhouse/kiosk-wheelhouse.txt"
    say "$(grep -c '\.whl$' "$OUT/kiosk/wheelhouse/kiosk-wheelhouse.txt") wheels in $OUT/kiosk/wheelhouse"
    if [ -n "$TAR" ]; then
        tar -C "$OUT" -czf "$OUT.tar.gz" kiosk
        say "wrote $OUT.tar.gz"
    fi
    say "done. On the Pi: sudo kiosk/systemd/install.sh --find-links \"\$PWD/kiosk/wheelhouse\""
}

main "$@"
