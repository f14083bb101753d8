"""Home Assistant MQTT discovery: the kiosk as a device with entities. Pure (topics and payloads only).

Published retained on connect and again whenever `homeassistant/status` says "online".
Discovery topics are `{ha_prefix}/{component}/{kiosk}/{object}/config` (the broker ACL lets a kiosk write
below its own id only).
"""

from __future__ import annotations

from kiosk.events import LAMP_STATUS, LOOKUP, PRECHECK, Topics, encode


def status_topic(ha_prefix: str) -> str:
    return f"{ha_prefix}/status"


def messages(topics: Topics, ha_prefix: str) -> list[tuple[str, bytes]]:
    """(topic, payload) of every discovery config, to publish retained."""
    device = {"identifiers": [f"kiosk_{topics.site}_{topics.kiosk}"], "name": f"Kiosk {topics.kiosk}",
              "manufacturer": "mynumber-kiosk", "model": "companion kiosk", "suggested_area": topics.site}
    availability = {"availability_topic": topics.status, "availability_template": "{{ value_json.state }}",
                    "payload_available": "online", "payload_not_available": "offline"}
    entities = [
        ("binary_sensor", "online", {"name": "Online", "state_topic": topics.status,
                                     "value_template": "{{ value_json.state }}", "payload_on": "online",
                                     "payload_off": "offline", "device_class": "connectivity"}),
        ("binary_sensor", "open_call", {"name": "Open call", "state_topic": topics.call,
                                        "value_template": "{{ 'ON' if value else 'OFF' }}",
                                        "icon": "mdi:bell-ring", **availability}),
        ("sensor", "last_outcome", {"name": "Last pre-check outcome", "state_topic": topics.event(PRECHECK),
                                    "value_template": "{{ value_json.data.outcome }}", **availability}),
        ("sensor", "last_code", {"name": "Last looked-up code", "state_topic": topics.event(LOOKUP),
                                 "value_template": "{{ value_json.data.code }}", **availability}),
        ("sensor", "lamp", {"name": "Lamp", "state_topic": topics.event(LAMP_STATUS),
                            "value_template": "{{ value_json.data.pattern }}", "icon": "mdi:alarm-light",
                            **availability}),
    ]
    return [(f"{ha_prefix}/{component}/{topics.kiosk}/{object_id}/config",
             encode({**config, "unique_id": f"kiosk_{topics.site}_{topics.kiosk}_{object_id}",
                     "object_id": f"kiosk_{topics.kiosk}_{object_id}", "device": device, "qos": 1}))
            for component, object_id, config in entities]
