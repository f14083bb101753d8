"""The kiosk's configuration: one typed object built from a TOML file plus CLI overrides.

Each section is owned by the part of the code that reads it; nothing deeper reads the
environment or global settings. Errors name the file, the field and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hardware.readers import registry
from hardware.readers.contract import ReaderError
from hardware.signals import DEFAULT_BOUNCE_SECONDS, GpioPins
from kiosk.tomldata import read_toml, validate
from kiosk.vocabulary import DEFAULT_TIMEZONE

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/config.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KioskSection(Section):
    id: str = Field(default="kiosk-1", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    site: str = Field(default="site-1", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    state_dir: Path = Path("/var/lib/kiosk")
    language: str = "ja"


class FacilitySection(Section):
    """Which sections of the official cause/action text apply here."""

    type: Literal["clinic", "pharmacy"] = "clinic"
    e_prescription: bool = False
    e_karte: bool = False
    timezone: str = DEFAULT_TIMEZONE  # IANA zone: reports count days and hours in it, staff screens show times in it

    @model_validator(mode="after")
    def _known_zone(self) -> FacilitySection:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. Asia/Tokyo)") from None
        return self


class ReaderSection(Section):
    """The card reader. `backend`: a spec of `hardware.readers.registry` (`registry.spec_choices()`)."""

    backend: str = "pcsc"  # back-end spec, e.g. pcsc, nfc, sim:demo; checked against registry.BACKENDS
    name: str = ""  # substring of the reader name; empty = first found
    nfc_path: str = "usb"  # nfcpy device path
    rules: Path | None = None  # precheck rule table override

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: str) -> str:
        try:
            registry.find_backend(backend)
        except ReaderError as exc:
            raise ValueError(str(exc)) from None
        return backend

    @model_validator(mode="after")
    def _drivable(self) -> ReaderSection:
        """A reader model the back-end cannot drive (nfc for an RC-S300) is refused here, not at first use."""
        refused = registry.unsupported_model(self.spec())
        if refused is not None:
            raise ValueError(str(refused))
        return self

    def spec(self) -> str:
        """The `open_reader` spec: `backend`, except a bare `nfc` becomes `nfc:<nfc_path>`."""
        return f"nfc:{self.nfc_path}" if self.backend == "nfc" else self.backend


class MqttSection(Section):
    url: str = "mqtt://127.0.0.1:1883"
    prefix: str = Field(default="kiosk", pattern=r"^[A-Za-z0-9_/-]{1,64}$")
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    ha_discovery: bool = False
    ha_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ha_language: str = Field(default="ja", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # HA entity names
    outbox_cap: int = Field(default=100_000, ge=100)
    heartbeat_seconds: float = Field(default=60.0, gt=0)
    # MQTT keep-alive of consoles and `kiosk watch`: a console that dies unannounced is declared offline (its Last
    # Will) by the broker after 1.5 x this, and its kiosks stop counting it
    console_keepalive_seconds: int = Field(default=30, ge=2, le=600)


BcmPin = Annotated[int, Field(ge=0, le=27)]  # the 40-pin header's GPIO 0-27


class GpioSection(Section):
    """BCM pin numbers; None disables that part. Each part needs a pin of its own."""

    lamp: BcmPin | None = 17
    buzzer: BcmPin | None = None
    call_button: BcmPin | None = 27
    reset_button: BcmPin | None = 22
    lamp_active_high: bool = True
    bounce_seconds: float = Field(default=DEFAULT_BOUNCE_SECONDS, ge=0, le=1)

    def pins(self) -> GpioPins:
        """The plain pin numbers and options `hardware.signals.Signals` takes."""
        return GpioPins(lamp=self.lamp, buzzer=self.buzzer, call_button=self.call_button,
                        reset_button=self.reset_button, lamp_active_high=self.lamp_active_high,
                        bounce_seconds=self.bounce_seconds)

    @model_validator(mode="after")
    def _pins_distinct(self) -> GpioSection:
        used: dict[int, str] = {}
        for part in ("lamp", "buzzer", "call_button", "reset_button"):
            pin = getattr(self, part)
            if pin is not None and pin in used:
                raise ValueError(f"GPIO {pin} is given to both {used[pin]} and {part}")
            if pin is not None:
                used[pin] = part
        return self


class UiSection(Section):
    fullscreen: bool = True
    idle_timeout_seconds: float = Field(default=60.0, gt=0)  # no touch on lookup/staff screens -> home
    result_timeout_seconds: float = Field(default=30.0, gt=0)
    checking_seconds: float = Field(default=0.8, ge=0)  # "checking..." shown at least this long
    linger_after_removal_seconds: float = Field(default=5.0, ge=0)  # result stays after the card is taken
    failures_before_call: int = Field(default=3, ge=1)


class CallsSection(Section):
    """What happens to a staff call nobody acknowledges (kiosk.flow): counted from when the call opened."""

    escalate_seconds: float = Field(default=60.0, gt=0)  # call_escalated, urgent lamp, "called once more"
    desk_seconds: float = Field(default=180.0, gt=0)  # second call_escalated: the patient is sent to the desk

    @model_validator(mode="after")
    def _desk_after_escalation(self) -> CallsSection:
        if self.desk_seconds <= self.escalate_seconds:
            raise ValueError(f"desk_seconds ({self.desk_seconds:g}) must be longer than escalate_seconds "
                             f"({self.escalate_seconds:g})")
        return self


class StaffSection(Section):
    pin_hash: str = ""  # salted hash (kiosk.passwords.hash_secret); empty = staff mode disabled
    pin_attempts: int = Field(default=5, ge=1)  # wrong PINs before a lockout
    pin_lockout_seconds: float = Field(default=300.0, ge=0)


class ConsoleSection(Section):
    """The staff web console (`kiosk console`); see docs/console.md."""

    listen: str = Field(default="127.0.0.1:8080", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
    accounts_file: Path | None = None  # TOML with [[account]] name / password_hash / role (staff | display)
    session_minutes: int = Field(default=480, ge=1)
    display_session_minutes: int = Field(default=10_080, ge=1)  # wall screens stay logged in for a week
    sites: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = []  # shown + commanded; empty = [kiosk.site]
    language: Literal["ja", "en"] = "ja"
    command_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    urgent_seconds: float = Field(default=60.0, gt=0)  # an unacknowledged call turns urgent (red) after this
    realert_seconds: float = Field(default=30.0, ge=5)  # chime + notification again this often until acknowledged
    # a staff page counts as listening (the kiosks' consoles_online) while visible; it says so every third of
    # this, and a page silent this long (asleep, PC off, network gone) stops counting
    listener_expiry_seconds: float = Field(default=45.0, ge=3, le=600)
    max_failed_logins: int = Field(default=5, ge=1)  # per account and per client address ...
    lockout_minutes: float = Field(default=15.0, gt=0)  # ... within this window, then refused until it passes
    max_kiosks: int = Field(default=2_000, ge=1)  # kiosks tracked over all `sites`; more are ignored (logged)
    tls_cert_file: Path | None = None  # both set = serve HTTPS directly (else use a reverse proxy)
    tls_key_file: Path | None = None


class RecorderSection(Section):
    """The event recorder (kiosk.recorder): every event stored once; see docs/history.md."""

    database: str = ""  # SQLAlchemy URL; empty = SQLite <state dir>/history.sqlite3 (console's, or [kiosk] state_dir)
    in_console: bool = True  # `kiosk console` records too; false when a separate `kiosk recorder` runs
    # "+" = every site; empty = the console's
    sites: list[Annotated[str, Field(pattern=r"^(\+|[A-Za-z0-9_-]{1,64})$")]] = []
    client_id: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")  # the session's; "" = one per store
    session_expiry_hours: float = Field(default=168.0, ge=72.0)  # the broker keeps the queue this long (>= a weekend)
    retention_days: int = Field(default=400, ge=1)  # older events are pruned once a day
    heartbeat_retention_days: int = Field(default=8, ge=1)  # heartbeat rows (their presence spans stay)
    offline_after_seconds: float = Field(default=180.0, ge=120.0)  # silence = offline (>= presence JOIN_MS)


class VoiceSection(Section):
    """Offline voice guidance (kiosk.voice); staff mode can change muted/volume at run time."""

    enabled: bool = True
    muted: bool = False
    volume: float = Field(default=0.8, ge=0.0, le=1.0)
    device: str = Field(default="default", min_length=1)  # ALSA playback device for aplay -D
    cache_dir: Path | None = None  # clip cache; None = <kiosk.state_dir>/voice
    jtalk_dictionary: Path = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")  # open-jtalk-mecab-naist-jdic


class Config(Section):
    kiosk: KioskSection = KioskSection()
    facility: FacilitySection = FacilitySection()
    reader: ReaderSection = ReaderSection()
    mqtt: MqttSection = MqttSection()
    gpio: GpioSection = GpioSection()
    ui: UiSection = UiSection()
    calls: CallsSection = CallsSection()
    staff: StaffSection = StaffSection()
    console: ConsoleSection = ConsoleSection()
    voice: VoiceSection = VoiceSection()
    recorder: RecorderSection = RecorderSection()


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, field and value."""


def load_config(path: Path | None) -> Config:
    """Read and validate a TOML config; a missing default file means built-in defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    return config_from_dict(read_toml(path, ConfigError, "config file"), source=str(path))


def config_from_dict(data: Mapping[str, object], source: str = "<config>") -> Config:
    return validate(Config, data, ConfigError, source)
