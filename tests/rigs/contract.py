"""Validate payloads against the published contract, docs/asyncapi.yaml (reusable by every test)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
BASE_URI = "urn:kiosk:asyncapi"


@functools.cache
def _registry() -> Registry:
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return Registry().with_resource(BASE_URI, Resource.from_contents(document, default_specification=DRAFT7))


@functools.cache
def validator(schema: str) -> jsonschema.Draft7Validator:
    """A validator for components/schemas/<schema>, e.g. "Status", "Command", "PrecheckEvent"."""
    return jsonschema.Draft7Validator({"$ref": f"{BASE_URI}#/components/schemas/{schema}"}, registry=_registry())


def event_schema(kind: str) -> str:
    """The schema name of an event kind: call_acknowledged -> CallAcknowledgedEvent."""
    return "".join(part.capitalize() for part in kind.split("_")) + "Event"


def validate(schema: str, payload: Any) -> None:
    """Raise jsonschema.ValidationError naming the first problem."""
    validator(schema).validate(payload)


def validate_event(payload: dict) -> None:
    validate(event_schema(payload["kind"]), payload)
