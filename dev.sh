#!/usr/bin/env bash
# Set up and run from a clean clone, as root on Debian 12 / Raspberry Pi OS bookworm:
#   ./dev.sh demo   the simulated kiosk (no hardware needed)
#   ./dev.sh test   static checks (ruff, mypy), then the whole test suite against real pcscd, mosquitto, Kivy,
#                   Chromium, PostgreSQL, debootstrap roots (arm64 under qemu) and Home Assistant
#   ./dev.sh lint   the static checks alone
# Extra arguments go to the demo or to pytest.
set -euo pipefail
cd "$(dirname "$0")"
action=${1:-}
[ $# -gt 0 ] && shift

read_packages() { cat "$@" | sed -e 's/#.*//' | tr -s ' \t\n' ' '; }

install_debian_packages() {
    local wanted missing=()
    wanted=$(read_packages "$@")
    for pkg in $wanted; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing Debian packages (run as root to install): ${missing[*]}" >&2
        return 1
    fi
    echo "dev.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

setup_venv() {
    local extras=$1 stamp
    [ -x .venv/bin/python ] || python3 -m venv .venv
    stamp=".venv/.installed-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)-$extras"
    if [ ! -e "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" wheel
        .venv/bin/python -m pip install -q -e ".[$extras]"
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
}

# ruff (style and bug patterns) and mypy (types; strict on the pure core), as configured in pyproject.toml.
static_checks() {
    local status=0
    echo "dev.sh: ruff check" >&2
    .venv/bin/ruff check kiosk hardware tests bench || status=1
    echo "dev.sh: mypy" >&2
    .venv/bin/mypy || status=1
    [ "$status" -eq 0 ] || echo "dev.sh: static checks failed" >&2
    return "$status"
}

case "$action" in
    demo)
        install_debian_packages systemd/debian-packages.txt
        setup_venv pi
        exec .venv/bin/kiosk demo "$@"
        ;;
    test)
        install_debian_packages systemd/debian-packages.txt tests/debian-packages.txt
        setup_venv test
        status=0
        static_checks || status=$?
        tests=0
        .venv/bin/python -m pytest "$@" || tests=$?
        [ "$tests" -eq 5 ] && { echo "dev.sh: no tests were collected" >&2; tests=1; }
        [ "$tests" -ne 0 ] && status=$tests
        exit "$status"
        ;;
    lint)
        setup_venv test
        static_checks
        ;;
    *)
        echo "usage: ./dev.sh demo|test|lint [ARGS...]" >&2
        exit 2
        ;;
esac
