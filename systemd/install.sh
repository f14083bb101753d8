#!/usr/bin/env bash
# Install the kiosk on Raspberry Pi OS / Debian 12 (bookworm), or upgrade it in place. Run as root from a
# checkout of the project:
#
#   systemd/install.sh [--display kms|labwc] [--find-links DIR]
#   systemd/install.sh --uninstall [--purge]
#
# Re-running it upgrades the program and keeps /etc/kiosk (config, secrets) and /var/lib/kiosk (outbox, state).
# --display    kms: Pi OS Lite, Kivy on SDL's KMS/DRM driver; labwc: Pi OS desktop, autologin + autostart.
#              Default: the mode installed before, else labwc when labwc is installed, else kms.
# --find-links pip also looks for wheels in DIR. A wheelhouse made by systemd/bundle.sh (it holds
#              kiosk-wheelhouse.txt) is complete, so pip then uses it alone (--no-index): no network needed.
# --uninstall  removes the program, units and rules; keeps config, state and the kiosk user.
# --purge      with --uninstall: also removes /etc/kiosk, /var/lib/kiosk and the kiosk user.
# See docs/appliance.md.
set -euo pipefail

SOURCE=$(cd "$(dirname "$0")/.." && pwd)
SERVICE_USER=kiosk
PREFIX=/opt/kiosk
VENV=$PREFIX/venv
CONF_DIR=/etc/kiosk
CONFIG=$CONF_DIR/config.toml
MQTT_PASSWORD_FILE=$CONF_DIR/mqtt-password
CONSOLE_ACCOUNTS=$CONF_DIR/console-accounts.toml
STATE_DIR=/var/lib/kiosk
UNIT_DIR=/etc/systemd/system
DROP_IN=$UNIT_DIR/kiosk.service.d/display.conf
UNITS=(kiosk.service kiosk-console.service kiosk-recorder.service)  # kiosk-recorder: installed, enabled by hand (docs/history.md)
DEVICE_GROUPS=(gpio video render input plugdev audio)
LIGHTDM_CONF=/etc/lightdm/lightdm.conf.d/50-kiosk.conf
LABWC_AUTOSTART=$STATE_DIR/.config/labwc/autostart
# installed file -> source file, for everything installed verbatim (mosquitto configs are added below)
declare -A FILES=(
    [/etc/polkit-1/rules.d/50-kiosk.rules]=systemd/polkit/50-kiosk.rules
    [/etc/udev/rules.d/60-kiosk-readers.rules]=systemd/udev/60-kiosk-readers.rules
    [/etc/udev/rules.d/60-kiosk-gpio.rules]=systemd/udev/60-kiosk-gpio.rules
    [/etc/modprobe.d/kiosk-nfc-blacklist.conf]=systemd/udev/kiosk-nfc-blacklist.conf
    [$PREFIX/docs/appliance.md]=docs/appliance.md
    [$PREFIX/docs/hardware.md]=hardware/README.md
)

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
systemd_running() { [ -d /run/systemd/system ]; }

# Write stdin to PATH atomically: a temp file in the same directory, fsync, rename, fsync the directory.
# MODE and OWNER are optional (a FAT boot partition has neither).
write_atomic() {
    local path=$1 mode=${2:-} owner=${3:-} tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    [ -n "$mode" ] && chmod "$mode" "$tmp"
    [ -n "$owner" ] && chown "$owner" "$tmp"
    sync "$tmp"
    mv -f "$tmp" "$path"
    sync "$(dirname "$path")"
}

install_debian_packages() {
    local wanted missing=()
    wanted=$(grep -v '^\s*#' "$SOURCE/systemd/debian-packages.txt" | grep -v '^\s*$')
    for pkg in $wanted; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

create_user() {
    getent group gpio >/dev/null || groupadd --system gpio
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        say "creating the service user $SERVICE_USER"
        local own_group=(--user-group)
        getent group "$SERVICE_USER" >/dev/null && own_group=(--gid "$SERVICE_USER")
        useradd --system "${own_group[@]}" --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "companion kiosk" "$SERVICE_USER"
    fi
    local group
    for group in "${DEVICE_GROUPS[@]}"; do
        getent group "$group" >/dev/null && usermod -aG "$group" "$SERVICE_USER"
    done
    install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR" "$STATE_DIR/kivy"
    install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
}

install_program() {
    local pip_args=(--quiet --disable-pip-version-check)
    if [ -n "${FIND_LINKS:-}" ]; then
        pip_args+=(--find-links "$FIND_LINKS")
        [ -e "$FIND_LINKS/kiosk-wheelhouse.txt" ] && pip_args+=(--no-index) && say "installing offline from $FIND_LINKS"
    fi
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        say "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    say "installing the kiosk program into $VENV"
    # Build from a copy: pip/setuptools write build files next to the sources.
    BUILD_DIR=$(mktemp -d)
    trap 'rm -rf "$BUILD_DIR"' EXIT
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' -cf - . | tar -C "$BUILD_DIR" -xf -
    "$VENV/bin/pip" install "${pip_args[@]}" --upgrade wheel  # nfcpy's pydes is an sdist
    "$VENV/bin/pip" install "${pip_args[@]}" --upgrade "${BUILD_DIR}[pi]"
    "$VENV/bin/kiosk" --help >/dev/null || die "the installed kiosk command does not run"
}

install_files() {
    local target
    for target in "${!FILES[@]}"; do
        install -D -m 0644 "$SOURCE/${FILES[$target]}" "$target"
    done
    install -m 0600 -o "$SERVICE_USER" -g "$SERVICE_USER" "$SOURCE/systemd/display/kivy-config.ini" "$STATE_DIR/kivy/config.ini"
}

random_secret() { "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))'; }
# The secret goes through stdin, never the command line (other users can read command lines).
hash_secret() {
    printf '%s' "$1" | "$VENV/bin/python" -c 'import sys; from kiosk.passwords import hash_secret; print(hash_secret(sys.stdin.read()))'
}

# Secrets and config are written once; re-running keeps them (and only checks the config still validates).
write_config() {
    if [ ! -e "$MQTT_PASSWORD_FILE" ]; then
        random_secret | write_atomic "$MQTT_PASSWORD_FILE" 0600 "$SERVICE_USER:$SERVICE_USER"
        NEW_BROKER_PASSWORD=1
    fi
    if [ ! -e "$CONSOLE_ACCOUNTS" ]; then
        local console_password
        console_password=$(random_secret)
        printf '# Staff console accounts (format: systemd/console-accounts.example.toml); only hashes.\n[[account]]\nname = "reception"\npassword_hash = "%s"\nrole = "staff"\n' \
            "$(hash_secret "$console_password")" | write_atomic "$CONSOLE_ACCOUNTS" 0600 "$SERVICE_USER:$SERVICE_USER"
        say "staff console account 'reception', password: $console_password (shown only this once)"
    fi
    if [ -e "$CONFIG" ]; then
        say "keeping $CONFIG"
        "$VENV/bin/python" -c 'import sys; from pathlib import Path; from kiosk.config import load_config
load_config(Path(sys.argv[1]))' "$CONFIG" ||
            say "WARNING: $CONFIG does not validate with this version; fix it (see the message above)"
        return 0
    fi
    local pin pin_hash
    pin=$("$VENV/bin/python" -c 'import secrets; print(f"{secrets.randbelow(10**6):06d}")')
    pin_hash=$(hash_secret "$pin")
    sed "s|^pin_hash = \"\"|pin_hash = \"$pin_hash\"|" "$SOURCE/systemd/config.example.toml" |
        write_atomic "$CONFIG" 0600 "$SERVICE_USER:$SERVICE_USER"
    say "staff PIN for the kiosk's staff mode: $pin"
    say "write it down now: it is shown only this once (only its hash is kept in $CONFIG)"
}

# Japanese speech (Open JTalk) is slow on a Pi: make its clips now, as the service user, into its state dir.
build_voice_clips() {
    say "making the voice-guidance clips (kiosk voice build)"
    (cd "$STATE_DIR" && runuser -u "$SERVICE_USER" -- env HOME="$STATE_DIR" "$VENV/bin/kiosk" --config "$CONFIG" voice build >&2) ||
        say "some voice clips could not be made now; the kiosk makes them when first needed"
}

# *.conf files go where Debian's mosquitto.conf includes them; ACLs and the rest beside mosquitto.conf.
broker_target() {
    case "$1" in
        *.conf) echo "/etc/mosquitto/conf.d/$(basename "$1")" ;;
        *) echo "/etc/mosquitto/$(basename "$1")" ;;
    esac
}

configure_broker() {
    # The broker configs and ACLs are the events part's (systemd/mosquitto/); this adds the kiosk's account.
    local file
    for file in "$SOURCE"/systemd/mosquitto/*; do
        [ -f "$file" ] || continue
        install -D -m 0644 "$file" "$(broker_target "$file")"
    done
    local passwd=/etc/mosquitto/kiosk.passwd
    if [ ! -e "$passwd" ] || [ -n "${NEW_BROKER_PASSWORD:-}" ]; then
        touch "$passwd"
        chmod 0640 "$passwd"
        mosquitto_passwd -b "$passwd" "$SERVICE_USER" "$(cat "$MQTT_PASSWORD_FILE")"
        chown root:mosquitto "$passwd"
    fi
    if [ -n "${NEW_BROKER_PASSWORD:-}" ]; then
        say "broker account '$SERVICE_USER', password (also in $MQTT_PASSWORD_FILE): $(cat "$MQTT_PASSWORD_FILE")"
    fi
}

set_login_shell() {
    [ "$(getent passwd "$SERVICE_USER" | cut -d: -f7)" = "$1" ] || usermod -s "$1" "$SERVICE_USER"
}

current_display() {
    [ -e "$DROP_IN" ] || return 0
    if grep -q 'SDL_VIDEODRIVER=wayland' "$DROP_IN"; then echo labwc; else echo kms; fi
}

configure_display() {
    local mode=${DISPLAY_MODE:-$(current_display)}
    if [ -z "$mode" ]; then
        if command -v labwc >/dev/null; then mode=labwc; else mode=kms; fi
    fi
    say "display mode: $mode"
    install -d -m 0755 "$UNIT_DIR/kiosk.service.d"
    sed "s|@KIOSK_UID@|$(id -u "$SERVICE_USER")|" "$SOURCE/systemd/display/$mode.conf" |
        write_atomic "$DROP_IN" 0644 root:root
    if [ "$mode" = labwc ]; then
        install -D -m 0644 -o "$SERVICE_USER" -g "$SERVICE_USER" "$SOURCE/systemd/display/labwc-autostart" "$LABWC_AUTOSTART"
        chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR/.config"
        local session
        for session in rpd-labwc LXDE-pi-labwc labwc; do
            [ -e "/usr/share/wayland-sessions/$session.desktop" ] && break
        done
        install -d -m 0755 "$(dirname "$LIGHTDM_CONF")"
        sed "s|@SESSION@|$session|g" "$SOURCE/systemd/display/lightdm-autologin.conf" |
            write_atomic "$LIGHTDM_CONF" 0644 root:root
        set_login_shell /bin/sh  # a graphical login needs a shell; the password stays locked
    else
        rm -f "$LIGHTDM_CONF" "$LABWC_AUTOSTART"
        set_login_shell /usr/sbin/nologin
        keep_screen_on_kms
    fi
    KIOSK_AT_BOOT=$([ "$mode" = kms ] && echo yes || echo no)
}

# Pi OS Lite: no console blanking and no blinking text cursor behind the kiosk.
keep_screen_on_kms() {
    local cmdline=/boot/firmware/cmdline.txt
    [ -e "$cmdline" ] || return 0
    grep -q 'consoleblank=' "$cmdline" && return 0
    sed '1 s/$/ consoleblank=0 vt.global_cursor_default=0/' "$cmdline" | write_atomic "$cmdline"
}

install_units() {
    local unit
    for unit in "${UNITS[@]}"; do
        install -m 0644 "$SOURCE/systemd/$unit" "$UNIT_DIR/$unit"
    done
    if ! command -v systemctl >/dev/null; then
        say "systemctl not found: enable kiosk.service and kiosk-console.service once systemd runs"
        return 0
    fi
    systemd_running && systemctl daemon-reload
    systemctl enable kiosk-console.service mosquitto.service pcscd.socket >/dev/null 2>&1 ||
        say "could not enable the console, broker or pcscd (no systemd here?)"
    if [ "$KIOSK_AT_BOOT" = yes ]; then
        systemctl enable kiosk.service >/dev/null 2>&1 || true
    else
        systemctl disable kiosk.service >/dev/null 2>&1 || true  # started by the labwc autostart instead
    fi
    if systemd_running; then
        if command -v udevadm >/dev/null; then
            { udevadm control --reload && udevadm trigger --subsystem-match=usb --subsystem-match=gpio; } ||
                say "udev reload failed: replug the reader"
        fi
        systemctl restart mosquitto.service kiosk-console.service
        [ "$KIOSK_AT_BOOT" = yes ] && systemctl restart kiosk.service
        say "services (re)started; follow them with: journalctl -fu kiosk.service"
    else
        say "systemd is not running here (chroot?): services will start at the next boot"
    fi
}

uninstall() {
    if command -v systemctl >/dev/null; then
        systemd_running && { systemctl stop "${UNITS[@]}" 2>/dev/null || true; }
        systemctl disable "${UNITS[@]}" >/dev/null 2>&1 || true
    fi
    local target file unit
    for target in "${!FILES[@]}"; do rm -f "$target"; done
    for file in "$SOURCE"/systemd/mosquitto/*; do
        [ -f "$file" ] && rm -f "$(broker_target "$file")"
    done
    rm -f /etc/mosquitto/kiosk.passwd "$LIGHTDM_CONF" "$LABWC_AUTOSTART"
    rm -rf "$PREFIX" "$UNIT_DIR/kiosk.service.d"
    for unit in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$unit"; done
    systemd_running && systemctl daemon-reload
    if [ -n "$PURGE" ]; then
        rm -rf "$CONF_DIR" "$STATE_DIR" /var/lib/kiosk-console
        getent passwd "$SERVICE_USER" >/dev/null && userdel "$SERVICE_USER"
        getent group "$SERVICE_USER" >/dev/null && groupdel "$SERVICE_USER"
        say "removed the kiosk, its config, its state and the $SERVICE_USER user"
    else
        say "removed the kiosk; kept $CONF_DIR, $STATE_DIR and the $SERVICE_USER user (--purge removes them)"
    fi
}

# The last step: the checklist of everything the kiosk depends on, as the service user (its permissions are the
# ones that matter). Its failures do not fail the install: the program is installed either way, and some can only
# pass on the finished Pi (reader plugged in, services running after the reboot; never inside a chroot).
run_doctor() {
    say "checking the installation: kiosk doctor (as $SERVICE_USER)"
    if (cd "$STATE_DIR" && runuser -u "$SERVICE_USER" -- env HOME="$STATE_DIR" "$VENV/bin/kiosk" --config "$CONFIG" doctor >&2); then
        say "kiosk doctor: nothing failed"
    else
        say "kiosk doctor found problems (FAIL above); fix them, then run: sudo -u $SERVICE_USER $VENV/bin/kiosk doctor"
    fi
}

main() {
    local action=install
    PURGE="" DISPLAY_MODE="" FIND_LINKS=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --display) DISPLAY_MODE=${2:-}; shift ;;
            --find-links) FIND_LINKS=${2:-}; shift ;;
            --uninstall) action=uninstall ;;
            --purge) PURGE=1 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    case "$DISPLAY_MODE" in ""|kms|labwc) ;; *) die "--display must be kms or labwc, not '$DISPLAY_MODE'" ;; esac
    [ -n "$PURGE" ] && [ "$action" != uninstall ] && die "--purge only goes with --uninstall"
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
    umask 022
    if [ "$action" = uninstall ]; then
        uninstall
        return 0
    fi
    install_debian_packages
    create_user
    install_program
    install_files
    write_config
    build_voice_clips
    configure_broker
    configure_display
    install_units
    run_doctor
    say "done. Config: $CONFIG  State: $STATE_DIR  Program: $VENV"
}

main "$@"
