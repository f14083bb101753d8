"""`kiosk watch`: a terminal subscriber that pretty-prints live events, presence and open calls (rich).

It counts as a staff console: it announces its own retained presence (`{prefix}/{site}/console/<id>/status`,
"offline" as its Last Will) with one listener when its output is a terminal (someone reads it), none when it
is piped or redirected (a log): kiosks of the sites it watches count it only in the first case.
"""

from __future__ import annotations

import argparse
import queue
import sys
from dataclasses import dataclass, field
from typing import Any

from kiosk.cli import add_network_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    watch = subparsers.add_parser("watch", help="print live kiosk events and open calls from the broker")
    add_network_options(watch)
    watch.add_argument("--site", default="+", help="only this site (default: every site)")
    watch.add_argument("--count", type=int, metavar="N", help="exit after N messages (for scripts)")
    watch.set_defaults(handler=run_watch)


@dataclass
class WatchState:
    """What the watcher knows: presence and open call per kiosk ("site/kiosk")."""

    prefix: str
    online: dict[str, bool] = field(default_factory=dict)
    consoles: dict[str, bool] = field(default_factory=dict)  # "site/console id" -> online
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self, topic: str, payload: bytes):
        """One rich Text line for a message (None for a topic that is not a kiosk's); updates the state."""
        from rich.text import Text

        from kiosk import events

        line = Text()
        presence = events.parse_presence_topic(self.prefix, topic)
        if presence is not None:
            heard = events.presence_of(payload, presence[0])
            if heard is None:
                return line.append(f"{presence[1]:<20} ", "dim").append("unreadable console presence", "red")
            self.consoles[f"{presence[0]}/{presence[1]}"] = heard.online
            who = f", {heard.listeners} listening" if heard.listening else ", nobody listening"
            return (line.append(f"{presence[1]:<20} ", "bold").append(
                "▲ console online" + who if heard.online else "△ console offline",
                "green" if heard.listening else "yellow" if heard.online else "red")
                .append(f" (sites {', '.join(heard.sites)})"))
        site = topic.removeprefix(self.prefix + "/").split("/")[0]
        if topic.startswith(f"{self.prefix}/{site}/{events.REPLY}/"):  # a command response
            kiosk, rest = events.REPLY, "reply"
        else:
            parsed = events.parse_topic(self.prefix, topic)
            if parsed is None:
                return None
            site, kiosk, rest = parsed
        who = f"{site}/{kiosk}"
        try:
            body = events.load_payload(payload) if payload else None  # size and nesting limits: never a crash
        except events.PayloadError:
            return line.append(f"{who:<20} ", "dim").append(f"unreadable payload on {rest}", "red")
        if kiosk == events.REPLY:
            ok = isinstance(body, dict) and body.get("ok")
            return (line.append(f"{site + ' reply':<20} ", "dim")
                    .append("OK " if ok else f"ERROR {_get(body, 'error')} ", "green" if ok else "red")
                    .append(str(_get(body, "detail"))))
        if rest == "status":
            online = _get(body, "state") == "online"
            self.online[who] = online
            reason = _get(_get(body, "details"), "reason")
            return line.append(f"{who:<20} ", "bold").append("● online" if online else "○ offline",
                                                             "green" if online else "red").append(
                f" ({reason})" if reason else "")
        if rest == "call":
            if not body:
                self.calls.pop(who, None)
                return line.append(f"{who:<20} ", "bold").append("no open call", "green")
            self.calls[who] = body
            state = "acknowledged" if _get(body, "acknowledged") else "OPEN"
            return (line.append(f"{who:<20} ", "bold").append(f"CALL {state} ", "bold yellow")
                    .append(f"{_get(body, 'reason')} code {_get(body, 'code') or '—'} "
                            f"for {_get(body, 'audience')} since {_get(body, 'since')}"))
        if rest.startswith("event/") and isinstance(body, dict):
            data = body.get("data")
            if not isinstance(data, dict):
                data = {}
            style = "yellow" if str(body.get("kind", "")).startswith("call") else "cyan"
            return (line.append(f"{str(body.get('time', ''))[11:23]} ", "dim").append(f"{who:<20} ", "bold")
                    .append(f"#{body.get('seq')} ", "dim").append(f"{body.get('kind')} ", style)
                    .append(" ".join(f"{k}={_short(v)}" for k, v in data.items())))
        return None

    def calls_table(self):
        from rich.table import Table

        table = Table(title=f"open calls: {len(self.calls)}", title_justify="left")
        for column in ("kiosk", "state", "reason", "code", "since"):
            table.add_column(column)
        for who, call in sorted(self.calls.items()):
            table.add_row(who, "acknowledged" if _get(call, "acknowledged") else "OPEN", str(_get(call, "reason")),
                          str(_get(call, "code") or "—"), str(_get(call, "since")))
        return table


def _get(body: Any, key: str, default: Any = None) -> Any:
    return body.get(key, default) if isinstance(body, dict) else default


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return "—" if value is None else str(value)


def run_watch(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kiosk import events
    from kiosk.broker import Presence, new_client

    config = config_from_args(args)
    console = Console(highlight=False)
    state = WatchState(config.mqtt.prefix)
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    name = f"watch-{events.new_id()[:8]}"
    client, address = new_client(config.mqtt, name)
    filters = [(events.subscription(config.mqtt.prefix, args.site), 1)]
    presence = Presence.of(config.mqtt, [args.site], name, "watch",
                           under=config.kiosk.site if args.site == events.ANY_SITE else args.site)
    presence.arm(client)

    listeners = 1 if sys.stdout.isatty() else 0  # someone reads a terminal; nobody hears a pipe or a log file

    def on_connect(c, _userdata, _flags, reason, _properties) -> None:
        inbox.put(("connected", str(reason)))
        if not reason.is_failure:
            c.subscribe(filters)
            presence.announce(c, listeners)

    client.on_connect = on_connect
    client.on_disconnect = lambda _c, _u, _f, reason, _p: inbox.put(("disconnected", str(reason)))
    client.on_message = lambda _c, _u, message: inbox.put(("message", message.topic, message.payload))
    client.connect_async(address.host, address.port, keepalive=config.mqtt.console_keepalive_seconds)
    client.loop_start()
    seen = 0
    try:
        while args.count is None or seen < args.count:
            kind, *rest = inbox.get()
            if kind != "message":
                console.print(f"[dim]broker {address.host}:{address.port}: {kind} ({rest[0]})[/dim]")
                continue
            if rest[0] == presence.topic:
                continue  # its own presence
            seen += 1
            line = state.describe(*rest)
            if line is not None:
                console.print(line)
                if rest[0].endswith("/call"):
                    console.print(state.calls_table())
    finally:
        presence.withdraw(client)
        client.disconnect()
        client.loop_stop()
    return 0
