"""Home Assistant MQTT discovery: the kiosk as one device with its entities. Pure (topics and payloads only).

One retained *device-based* discovery config per kiosk on `{ha_prefix}/device/{kiosk}/config` (components under
`cmps`, an `origin` block, entity ids fixed by `default_entity_id`), as Home Assistant's MQTT integration
documents it since 2024.12 (`object_id` is ignored since 2026.4). The broker ACL lets a kiosk write below its
own id only (`{ha_prefix}/+/{kiosk}/#`). The link publishes `messages()` retained on every connect and again
whenever Home Assistant's birth message (`{ha_prefix}/status` = "online") arrives; with `ha_discovery = false`
the same call returns the withdrawal (an empty retained config), so a kiosk taken out of Home Assistant leaves no
orphan device behind. The per-entity configs of earlier versions are emptied once per kiosk (legacy_cleared).

Every state comes from the kiosk's own MQTT contract (docs/asyncapi.yaml): the retained `status` (online,
the call's state, reader, lamp, outage, catalogue version), the retained `call` (the open call's attributes),
and the `precheck`, `lookup`, `call_escalated` and `heartbeat` events (outbox backlog and storage, clock
synchronised). States are the contract's ids (stable for automations); enum sensors list their options. Entity
names are in the facility's language ([mqtt] ha_language) from catalogue/locales/<lang>/homeassistant.json,
English when a language or a name is missing there.

Templates never touch a key the payload may lack (an offline status has no `details.reader`): Home Assistant
logs a warning for every undefined variable, and an empty output makes it ignore the message.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from kiosk.config import MqttSection
from kiosk.events import (
    CALL_ESCALATED,
    CALL_STATES,
    ESCALATED,
    HEARTBEAT,
    LOOKUP,
    NO_CALL,
    PRECHECK,
    SENT_TO_DESK,
    Topics,
    encode,
)
from kiosk.outbox import STORAGE_STATES
from kiosk.paths import catalogue_root
from kiosk.precheck import Outcome
from kiosk.vocabulary import LAMP_PATTERNS

PACKAGE = "mynumber-kiosk"
SUPPORT_URL = "https://github.com/mynumber-kiosk/mynumber-kiosk"
FALLBACK_LANGUAGE = "en"
NAMES_FILE = "homeassistant.json"  # in catalogue/locales/<lang>/: entity and device names (staff-only)
# Event types of the call escalation event entity by `call_escalated` data.level (kiosk.events).
ESCALATION_TYPES = {ESCALATED: "escalated", SENT_TO_DESK: "sent_to_desk"}
# Entities of the per-entity discovery topics used before device-based discovery (kept ids: history stays).
LEGACY_ENTITIES = (("binary_sensor", "online"), ("binary_sensor", "open_call"), ("sensor", "last_outcome"),
                   ("sensor", "last_code"), ("sensor", "lamp"))
LEGACY_CLEARED = "ha-legacy-discovery-cleared"  # marker in the state dir: LEGACY_ENTITIES' configs were emptied

_ONLINE = "value_json.state == 'online'"

log = logging.getLogger(__name__)


def _when_online(key: str, expression: str, otherwise: str = "") -> str:
    """A template giving `expression` when the status is online and carries details.<key>, else `otherwise`."""
    return (f"{{% if {_ONLINE} and value_json.details.{key} is defined %}}{{{{ {expression} }}}}"
            f"{{% else %}}{otherwise}{{% endif %}}")


def _defined(path: str, expression: str, otherwise: str) -> str:
    """A template giving `expression` when value_json.<path> is present and not null, else `otherwise`."""
    value = f"value_json.{path}"
    return (f"{{% if {value} is defined and {value} is not none %}}{{{{ {expression} }}}}"
            f"{{% else %}}{otherwise}{{% endif %}}")


def status_topic(ha_prefix: str) -> str:
    """Home Assistant's birth and last-will topic: "online" there means "announce again"."""
    return f"{ha_prefix}/status"


def discovery_topic(topics: Topics, ha_prefix: str) -> str:
    return f"{ha_prefix}/device/{topics.kiosk}/config"


def legacy_topics(topics: Topics, ha_prefix: str) -> list[str]:
    """The per-entity config topics earlier versions published (emptied so no duplicate is left)."""
    return [f"{ha_prefix}/{component}/{topics.kiosk}/{key}/config" for component, key in LEGACY_ENTITIES]


@cache
def entity_names(language: str) -> dict[str, str]:
    """Entity and device names in `language`, each missing one in English: catalogue/locales/<lang>/NAMES_FILE,
    a staff-only file (kiosk.locales.STAFF_ONLY_FILES; ja and en today). A file that cannot be read is logged
    and skipped (names are cosmetic: discovery goes on, with the keys as names at worst)."""
    folder = catalogue_root() / "locales"
    names: dict[str, str] = {}
    for code in (FALLBACK_LANGUAGE, language):
        path = folder / code / NAMES_FILE
        if not path.is_file():
            continue
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Home Assistant names: cannot read %s: %s", path, exc)
            continue
        if isinstance(loaded, dict):
            names.update({str(k): str(v) for k, v in loaded.items()})
        else:
            log.warning("Home Assistant names: %s is not a JSON object", path)
    return names


def entity_id(component: str, topics: Topics, key: str) -> str:
    """The entity id Home Assistant gives an entity (`default_entity_id`): `<component>.kiosk_<kiosk>_<key>`,
    lower case, anything but letters and digits as `_` (a kiosk id may hold `-`, an entity id may not)."""
    return f"{component}.{re.sub(r'[^a-z0-9]+', '_', f'kiosk_{topics.kiosk}_{key}'.lower())}"


def unique_id(topics: Topics, key: str) -> str:
    return f"kiosk_{topics.site}_{topics.kiosk}_{key}"


def _package_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "0"


def components(topics: Topics) -> dict[str, dict[str, Any]]:
    """The device's components by key (without names, ids and device): what each entity shows and from where."""
    available = {"availability_topic": topics.status, "availability_template": "{{ value_json.state }}",
                 "payload_available": "online", "payload_not_available": "offline"}
    call_attributes = ("{{ {'reason': value_json.reason, 'code': value_json.code, 'since': value_json.since, "
                       "'acknowledged': value_json.acknowledged, 'audience': value_json.audience, "
                       "'escalation': value_json.escalation | default(0)} | tojson if value else '{}' }}")
    level_types = "{" + ", ".join(f"{level}: '{name}'" for level, name in ESCALATION_TYPES.items()) + "}"
    diagnostic = {"entity_category": "diagnostic"}
    return {
        "online": {"platform": "binary_sensor", "device_class": "connectivity", "state_topic": topics.status,
                   "value_template": "{{ value_json.state }}", "payload_on": "online", "payload_off": "offline",
                   "json_attributes_topic": topics.status,
                   "json_attributes_template": "{{ {'since': value_json.time, 'reason': value_json.details.reason"
                                               " | default(None)} | tojson }}"},
        "precheck": {"platform": "event", "state_topic": topics.event(PRECHECK),
                     "event_types": [str(o) for o in Outcome],
                     "value_template": "{{ {'event_type': value_json.data.outcome, 'code': value_json.data.code, "
                                       "'hints': value_json.data.hints} | tojson }}",
                     "icon": "mdi:card-account-details", **available},
        "last_outcome": {"platform": "sensor", "device_class": "enum", "options": [str(o) for o in Outcome],
                         "state_topic": topics.event(PRECHECK), "value_template": "{{ value_json.data.outcome }}",
                         "json_attributes_topic": topics.event(PRECHECK),
                         "json_attributes_template": "{{ {'code': value_json.data.code, 'time': value_json.time}"
                                                     " | tojson }}",
                         "icon": "mdi:card-account-details-outline", **available},
        # State from the retained status (details.call): after a restart Home Assistant finds no retained call
        # when there is none; the attributes from the retained call.
        "open_call": {"platform": "binary_sensor", "state_topic": topics.status,
                      "value_template": _when_online("call", f"'OFF' if value_json.details.call == '{NO_CALL}' "
                                                             "else 'ON'"),
                      "json_attributes_topic": topics.call,
                      "json_attributes_template": call_attributes, "icon": "mdi:bell-ring", **available},
        "call_escalated": {"platform": "event", "state_topic": topics.event(CALL_ESCALATED),
                           "event_types": list(ESCALATION_TYPES.values()),
                           "value_template": f"{{{{ {{'event_type': {level_types}[value_json.data.level], "
                                             "'level': value_json.data.level, 'reason': value_json.data.reason, "
                                             "'code': value_json.data.code, 'waited_seconds': "
                                             "value_json.data.waited_seconds, 'consoles_online': "
                                             "value_json.data.consoles_online} | tojson }}",
                           "icon": "mdi:bell-alert", **available},
        "call_state": {"platform": "sensor", "device_class": "enum", "options": list(CALL_STATES),
                       "state_topic": topics.status,
                       "value_template": _when_online("call", "value_json.details.call", "None"),
                       "icon": "mdi:account-voice", **available},
        "last_code": {"platform": "sensor", "state_topic": topics.event(LOOKUP),
                      "value_template": "{{ value_json.data.code }}", "json_attributes_topic": topics.event(LOOKUP),
                      "json_attributes_template": "{{ {'known': value_json.data.known, 'audience': "
                                                  "value_json.data.audience | default(None), 'outage': "
                                                  "value_json.data.outage | default(None), 'time': value_json.time}"
                                                  " | tojson }}",
                      "icon": "mdi:numeric", **available},
        "reader_fault": {"platform": "binary_sensor", "device_class": "problem", "state_topic": topics.status,
                         "value_template": _when_online("reader", "'OFF' if value_json.details.reader.available "
                                                                  "else 'ON'"),
                         "json_attributes_topic": topics.status,
                         "json_attributes_template": _when_online("reader",
                                                                  "{'detail': value_json.details.reader.detail, "
                                                                  "'cause': value_json.details.reader.cause"
                                                                  " | default('')} | tojson", "{}"),
                         **available},
        "outage": {"platform": "binary_sensor", "device_class": "problem", "state_topic": topics.status,
                   "value_template": _when_online("outage", "'ON' if value_json.details.outage.active else 'OFF'"),
                   "json_attributes_topic": topics.status,
                   "json_attributes_template": _when_online("outage", "{'code': value_json.details.outage.code}"
                                                                      " | tojson", "{}"),
                   "icon": "mdi:cloud-alert", **available},
        "consoles_online": {"platform": "sensor", "state_class": "measurement", "state_topic": topics.status,
                            "value_template": _when_online("consoles_online", "value_json.details.consoles_online",
                                                           "None"),
                            "icon": "mdi:monitor-account", **available},
        "lamp": {"platform": "sensor", "device_class": "enum", "options": list(LAMP_PATTERNS),
                 "state_topic": topics.status, "value_template": _when_online("lamp", "value_json.details.lamp",
                                                                              "None"),
                 "icon": "mdi:alarm-light", **available},
        "outbox_backlog": {"platform": "sensor", "state_class": "measurement", "unit_of_measurement": "events",
                           "state_topic": topics.event(HEARTBEAT),
                           "value_template": "{{ value_json.data.outbox.backlog }}",
                           "json_attributes_topic": topics.event(HEARTBEAT),
                           "json_attributes_template": "{{ {'dropped': value_json.data.outbox.dropped, 'refused': "
                                                       "value_json.data.outbox.refused, 'held': "
                                                       "value_json.data.outbox.held | default(0)} | tojson }}",
                           "icon": "mdi:tray-full", **diagnostic, **available},
        "storage": {"platform": "sensor", "device_class": "enum", "options": list(STORAGE_STATES),
                    "state_topic": topics.event(HEARTBEAT),
                    "value_template": "{{ value_json.data.outbox.storage | default('ok') }}",
                    "icon": "mdi:sd", **diagnostic, **available},
        "clock_synchronized": {"platform": "binary_sensor", "state_topic": topics.event(HEARTBEAT),
                               "value_template": _defined("data.clock_synchronized",
                                                          "'ON' if value_json.data.clock_synchronized else 'OFF'",
                                                          "None"),
                               "icon": "mdi:clock-check-outline", **diagnostic, **available},
        "catalogue_version": {"platform": "sensor", "state_topic": topics.status,
                              "value_template": "{{ value_json.catalogue_version }}", "icon": "mdi:book-open-variant",
                              **diagnostic, **available},
    }


def _device_name(names: dict[str, str], topics: Topics) -> str:
    """The device's name from the `device` template (`{kiosk}`, `{site}`), the kiosk id if that is unusable."""
    try:
        return names.get("device", "{kiosk}").format(kiosk=topics.kiosk, site=topics.site)
    except (KeyError, IndexError, ValueError):
        return topics.kiosk


def discovery_config(topics: Topics, language: str) -> dict[str, Any]:
    """The device-based discovery payload: device, origin and every component with its name and ids."""
    names = entity_names(language)
    sw_version = _package_version()
    cmps = {key: {**config, "name": names.get(key, key), "unique_id": unique_id(topics, key),
                  "default_entity_id": entity_id(config["platform"], topics, key)}
            for key, config in components(topics).items()}
    return {"device": {"identifiers": [f"kiosk_{topics.site}_{topics.kiosk}"],
                       "name": _device_name(names, topics),
                       "manufacturer": PACKAGE, "model": names.get("model", PACKAGE), "sw_version": sw_version,
                       "suggested_area": topics.site},
            "origin": {"name": PACKAGE, "sw_version": sw_version, "support_url": SUPPORT_URL},
            "cmps": cmps, "qos": 1}


def messages(topics: Topics, section: MqttSection, legacy: bool = True) -> list[tuple[str, bytes]]:
    """(topic, payload) pairs to publish retained, in order: with `ha_discovery` the device config, else the
    withdrawal (an empty config). `legacy`: first empty the per-entity configs of earlier versions, once per
    kiosk (see legacy_cleared): once Home Assistant has the device, a message on those topics, even an empty
    one, is a "conflicting MQTT discovery message" warning in its log."""
    emptied = [(topic, b"") for topic in legacy_topics(topics, section.ha_prefix)] if legacy else []
    device = discovery_topic(topics, section.ha_prefix)
    if not section.ha_discovery:
        return [*emptied, (device, b"")]
    return [*emptied, (device, encode(discovery_config(topics, section.ha_language)))]


def legacy_cleared(state_dir: Path) -> bool:
    """True once this kiosk has emptied the per-entity configs of earlier versions (a marker in its state dir)."""
    return (state_dir / LEGACY_CLEARED).exists()


def mark_legacy_cleared(state_dir: Path) -> None:
    """Note that the per-entity configs were emptied. A state dir that cannot be written is logged: they are
    emptied again on the next connection (Home Assistant then logs a warning per entity, nothing breaks)."""
    try:
        (state_dir / LEGACY_CLEARED).write_text("emptied the per-entity discovery configs of earlier versions\n",
                                                encoding="utf-8")
    except OSError as exc:
        log.warning("cannot note that the old Home Assistant configs were emptied: %s", exc)
