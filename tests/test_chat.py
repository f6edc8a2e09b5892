"""Chat notifications: payloads, escaping and delivery, against real local HTTP servers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.config import ChatDestination, Kind, Silence
from streams.outputs.chat import (
    ZERO_WIDTH_SPACE,
    break_mentions,
    escape_google_chat,
    escape_slack,
    plain_text,
    render,
    render_group,
    scope_label,
)
from streams.outputs.notifier import Notifier, Outcome, RetryPolicy
from streams.outputs.records import AlertRecord
from tests.chat_servers import SECRET, Receiver, Reply

DASHBOARD = "https://grafana.example.com/d/flowgauge"
FAST = RetryPolicy(first_delay=0.02, max_delay=0.1)
MENTION = re.compile(r"@(channel|here|all|everyone)", re.IGNORECASE)
# Ticket-supplied text that tries to ping everyone on every platform.
EVIL_QUEUE = "<!channel> @here & @everyone <users/all> @all"


def alert(
    scope: str = "queue:billing",
    state: str = "firing",
    fired: str = "2026-03-02T14:00:00Z",
    summary: str | None = None,
) -> AlertRecord:
    incident = f"inflow_above_outflow:{scope}:{fired}"
    name = scope.partition(":")[2] or "Whole backlog"
    default = (
        f"{name}: inflow 214/day now exceeds outflow 188/day; backlog 2.6 days of capacity "
        f"and growing 26/day; 42 open as of {fired}"
        if state == "firing"
        else f"{name}: outflow 201/day has caught up with inflow 199/day; 40 open as of {fired}"
    )
    return AlertRecord(
        alert_id=f"{incident}:{state}",
        incident_id=incident,
        rule="inflow_above_outflow",
        scope=scope,
        state="firing" if state == "firing" else "resolved",
        at=fired,
        value=26.0 if state == "firing" else -2.0,
        threshold=0.0,
        summary=default if summary is None else summary,
    )


def destination(name: str, kind: Kind, url: str, **settings: Any) -> ChatDestination:
    values = {"name": name, "kind": kind, "url": url, "per_minute": 6000, "burst": 10}
    return ChatDestination.model_validate(values | {"timeout_seconds": 1.0} | settings)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 10))


def strings(payload: object) -> str:
    """Every string a platform could show, keys excepted, one per line."""
    if isinstance(payload, str):
        return payload + "\n"
    if isinstance(payload, dict):
        return "".join(strings(value) for value in payload.values())
    if isinstance(payload, list):
        return "".join(strings(value) for value in payload)
    return ""


# --- what each platform receives ---------------------------------------------------------


def check_slack(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    blocks = firing["blocks"]
    assert [block["type"] for block in blocks] == ["header", "section", "section", "actions"]
    assert blocks[0]["text"] == {
        "type": "plain_text",
        "text": "\U0001f534 Firing: inflow above outflow",
    }
    section = blocks[1]["text"]["text"]
    assert section.startswith("*&lt;!channel&gt; @\u200bhere &amp; @\u200beveryone")
    assert "<" not in strings(firing["text"]) + section
    assert blocks[3]["elements"][0]["url"] == DASHBOARD
    assert resolved["blocks"][0]["text"]["text"] == "\u2705 Resolved: inflow above outflow"


def check_teams(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    assert firing["type"] == "message"
    [attachment] = firing["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert [item["type"] for item in card["body"]] == ["TextBlock", "TextBlock", "FactSet"]
    assert card["body"][0]["color"] == "Attention"
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open dashboard", "url": DASHBOARD}
    ]
    assert resolved["attachments"][0]["content"]["body"][0]["color"] == "Good"


def check_discord(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    assert firing["allowed_mentions"] == {"parse": []}
    [embed] = firing["embeds"]
    assert embed["url"] == DASHBOARD
    assert embed["timestamp"] == "2026-03-02T14:00:00Z"
    assert embed["footer"]["text"] == break_mentions(alert(f"queue:{EVIL_QUEUE}").alert_id)
    assert embed["color"] != resolved["embeds"][0]["color"]
    assert resolved["allowed_mentions"] == {"parse": []}


def check_mattermost(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    record = alert(f"queue:{EVIL_QUEUE}")
    assert firing["props"] == {"alert_id": record.alert_id, "incident_id": record.incident_id}
    [attachment] = firing["attachments"]
    assert attachment["title_link"] == DASHBOARD
    assert resolved["props"]["alert_id"] == record.alert_id.replace("firing", "resolved")


def check_google_chat(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    assert "<users/all>" not in firing["text"]
    [card] = firing["cardsV2"]
    widgets = card["card"]["sections"][0]["widgets"]
    assert widgets[0]["textParagraph"]["text"].startswith("<b>&lt;!channel&gt; @\u200bhere &amp;")
    assert widgets[-1]["buttonList"]["buttons"][0]["onClick"] == {"openLink": {"url": DASHBOARD}}
    assert resolved["text"].startswith("\u2705 Resolved")


def check_webhook(firing: dict[str, Any], resolved: dict[str, Any]) -> None:
    record = alert(f"queue:{EVIL_QUEUE}", summary=f"billing is growing ({DASHBOARD})")
    expected = record.model_dump() | {
        "scope_label": f"{EVIL_QUEUE} queue",
        "dashboard_url": DASHBOARD,
    }
    assert {key: firing[key] for key in expected} == expected
    assert firing["text"].endswith(f"billing is growing\nDashboard: {DASHBOARD}")
    assert resolved["state"] == "resolved"


CHECKS = {
    "slack": check_slack,
    "teams": check_teams,
    "discord": check_discord,
    "mattermost": check_mattermost,
    "google_chat": check_google_chat,
    "webhook": check_webhook,
}


def test_every_kind_has_a_check() -> None:
    assert set(CHECKS) == set(get_args(Kind))


@pytest.mark.parametrize("kind", list(CHECKS))
def test_platform_receives_firing_then_resolved(kind: Kind) -> None:
    scope = f"queue:{EVIL_QUEUE}"
    summary = f"billing is growing ({DASHBOARD})"
    firing = alert(scope, summary=summary)
    resolved = alert(scope, "resolved", summary=summary)

    async def scenario() -> None:
        async with Receiver() as receiver:
            async with Notifier([destination("team", kind, receiver.url)], DASHBOARD) as notifier:
                notifier.submit(firing)
                notifier.submit(resolved)
                assert await notifier.join(5)
            bodies = receiver.delivered
        assert len(bodies) == 2
        CHECKS[kind](*bodies)
        # Mattermost props are for integrations, not shown.
        shown = [strings({k: v for k, v in body.items() if k != "props"}) for body in bodies]
        assert "2026-03-02T14:00:00Z" in shown[0]
        assert "Firing" in shown[0]
        assert "Resolved" in shown[1]
        if kind != "webhook":  # machine readers get the record as it is, unescaped
            assert not any(MENTION.search(text) for text in shown)
            assert f"({DASHBOARD})" not in shown[0]  # the link is a button, not repeated

    run(scenario())


# --- delivery -------------------------------------------------------------------------------


def test_429_waits_for_retry_after() -> None:
    async def scenario() -> None:
        limited = Reply(429, {"Retry-After": "0.4"})
        async with Receiver([limited]) as receiver:
            chat = destination("ops", "slack", receiver.url)
            async with Notifier([chat], retry=FAST) as notifier:
                notifier.submit(alert())
                assert await notifier.join(5)
        first, second = receiver.requests
        assert first.status == 429
        assert second.status == 200
        assert second.at - first.at >= 0.38  # the backoff alone would have been 0.02 s

    run(scenario())


def test_destination_that_times_out_does_not_delay_another() -> None:
    async def scenario() -> None:
        hung = Reply(504, delay=2.0)
        async with Receiver([hung]) as slow, Receiver() as fast:
            destinations = [
                destination("slow", "teams", slow.url, timeout_seconds=0.5),
                destination("fast", "discord", fast.url),
            ]
            async with Notifier(destinations, retry=FAST) as notifier:
                started = time.monotonic()
                notifier.submit(alert())
                await fast.wait_delivered(1, timeout=5)
                assert fast.requests[0].at - started < 0.3
                assert await notifier.join(5)  # the slow one is retried after its timeout
            assert len(slow.delivered) == 1

    run(scenario())


def test_destination_down_for_a_while_gets_every_alert_in_order() -> None:
    records = [alert("queue:billing"), alert("all"), alert("queue:billing", "resolved")]

    async def scenario() -> None:
        receiver = Receiver([Reply(503), Reply(503, {"Retry-After": "0.1"})])
        try:
            chat = destination("mm", "mattermost", receiver.url)
            async with Notifier([chat], retry=FAST) as notifier:
                for record in records:
                    notifier.submit(record)
                assert not await notifier.join(0.4)  # connection refused meanwhile
                await receiver.listen()
                assert await notifier.join(5)
        finally:
            await receiver.stop()
        delivered = [body["props"]["alert_id"] for body in receiver.delivered]
        assert delivered == [record.alert_id for record in records]
        assert [request.status for request in receiver.requests[:2]] == [503, 503]

    run(scenario())


def test_other_4xx_is_dropped_and_the_queue_moves_on() -> None:
    outcomes: list[tuple[str, Outcome]] = []

    async def scenario() -> None:
        async with Receiver([Reply(400)]) as receiver:
            chat = destination("gc", "google_chat", receiver.url)
            notifier = Notifier(
                [chat],
                retry=FAST,
                on_outcome=lambda name, outcome: outcomes.append((name, outcome)),
            )
            async with notifier:
                notifier.submit(alert("queue:billing"))
                notifier.submit(alert("queue:support"))
                assert await notifier.join(5)
        assert [request.status for request in receiver.requests] == [400, 200]

    run(scenario())
    assert outcomes == [("gc", "rejected"), ("gc", "delivered")]


def test_full_queue_drops_for_that_destination_only() -> None:
    outcomes: list[tuple[str, Outcome]] = []
    records = [alert(f"queue:q{n}") for n in range(5)]

    async def scenario() -> None:
        down = Receiver()  # never listens
        async with Receiver() as up:
            destinations = [
                destination("down", "webhook", down.url),
                destination("up", "webhook", up.url),
            ]
            notifier = Notifier(
                destinations,
                retry=FAST,
                queue_size=2,
                on_outcome=lambda name, outcome: outcomes.append((name, outcome)),
            )
            async with notifier:
                for record in records:
                    notifier.submit(record)
                    await up.wait_delivered(len(up.delivered) + 1, timeout=5)
        await down.stop()
        assert [body["alert_id"] for body in up.delivered] == [r.alert_id for r in records]

    run(scenario())
    # One in flight, two queued, the last two dropped.
    assert outcomes.count(("down", "dropped")) == 2
    assert ("down", "delivered") not in outcomes


def test_rate_limit_spaces_posts() -> None:
    async def scenario() -> None:
        async with Receiver() as receiver:
            chat = destination("slack", "slack", receiver.url, per_minute=600, burst=1)
            async with Notifier([chat]) as notifier:
                for n in range(4):
                    notifier.submit(alert(f"queue:q{n}"))
                assert await notifier.join(5)
        times = [request.at for request in receiver.requests]
        assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(times))

    run(scenario())


def test_an_alert_submitted_twice_is_posted_once() -> None:
    async def scenario() -> None:
        receiver = Receiver()
        notifier = Notifier([destination("hook", "webhook", receiver.url)])
        async with receiver, notifier:
            notifier.submit(alert())
            notifier.submit(alert())
            notifier.submit(alert(state="resolved"))
            assert await notifier.join(5)
        assert [body["state"] for body in receiver.delivered] == ["firing", "resolved"]

    run(scenario())


def test_an_alert_is_finished_once_every_destination_is_done_with_it() -> None:
    async def scenario() -> None:
        down = Receiver()  # refuses connections until it listens
        try:
            async with Receiver([Reply(400)]) as rejecting:
                destinations = [
                    destination("down", "webhook", down.url),
                    destination("rejecting", "slack", rejecting.url),
                ]
                async with Notifier(destinations, retry=FAST) as notifier:
                    finished = notifier.submit(alert())
                    await rejecting.wait_requests(1, timeout=5)
                    await asyncio.sleep(0.3)
                    assert [request.status for request in rejecting.requests] == [400]
                    assert not finished.done()  # rejected by one, still retried for the other
                    await down.listen()
                    await asyncio.wait_for(finished, 5)
                    assert notifier.submit(alert()) is finished
        finally:
            await down.stop()
        assert len(down.delivered) == 1

    run(scenario())


def test_each_destination_gets_the_rules_and_scopes_it_asked_for() -> None:
    """Billing's channel hears about billing, the ops channel only the whole backlog's
    headline, and a destination that names nothing gets everything."""
    alerts = [
        alert("all"),
        alert("queue:billing"),
        alert("queue:tech"),
        alert("queue:billing").model_copy(
            update={"rule": "reopen_rate_high", "alert_id": "reopen_rate_high:queue:billing:x"}
        ),
    ]

    async def scenario() -> None:
        async with Receiver() as billing, Receiver() as ops, Receiver() as everything:
            destinations = [
                destination("billing", "webhook", billing.url, scopes=["queue:billing"]),
                destination("ops", "webhook", ops.url, scopes=["all"], rules=["inflow_above_*"]),
                destination("everything", "webhook", everything.url),
            ]
            async with Notifier(destinations, retry=FAST) as notifier:
                await asyncio.wait_for(asyncio.gather(*map(notifier.submit, alerts)), 5)
            posted = {
                name: [(body["rule"], body["scope"]) for body in receiver.delivered]
                for name, receiver in (("billing", billing), ("ops", ops), ("all", everything))
            }
        assert posted == {
            "billing": [
                ("inflow_above_outflow", "queue:billing"),
                ("reopen_rate_high", "queue:billing"),
            ],
            "ops": [("inflow_above_outflow", "all")],
            "all": [(a.rule, a.scope) for a in alerts],
        }

    run(scenario())


def test_a_silence_mutes_its_rule_and_scope_until_its_end() -> None:
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
    silence = Silence(scope="queue:tech", until=datetime(2026, 3, 2, 12, tzinfo=UTC))
    outcomes: list[tuple[str, Outcome]] = []

    async def scenario() -> None:
        async with Receiver() as receiver:
            notifier = Notifier(
                [destination("team", "webhook", receiver.url)],
                retry=FAST,
                silences=[silence],
                clock=lambda: now[0],
                on_outcome=lambda name, outcome: outcomes.append((name, outcome)),
            )
            async with notifier:
                muted = notifier.submit(alert("queue:tech", fired="2026-03-02T08:00:00Z"))
                assert muted.done()  # finished at once: its offset may be committed
                await asyncio.wait_for(notifier.submit(alert("queue:billing")), 5)
                now[0] = silence.until
                await asyncio.wait_for(notifier.submit(alert("queue:tech")), 5)
            assert [body["scope"] for body in receiver.delivered] == [
                "queue:billing",
                "queue:tech",
            ]
        assert outcomes == [("team", "silenced"), ("team", "delivered"), ("team", "delivered")]

    run(scenario())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scopes": ["billing"]}, "is no scope"),
        ({"rules": ["inflow_above"]}, "matches no rule"),
    ],
)
def test_routing_names_only_scopes_and_rules_that_exist(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        destination("team", "slack", "https://hooks.example/x", **settings)
    with pytest.raises(ValidationError, match=message):
        Silence.model_validate(
            {"scope": settings.get("scopes", ["*"])[0], "rule": settings.get("rules", ["*"])[0],
             "until": "2026-03-02T12:00:00Z"}
        )  # fmt: skip
    with pytest.raises(ValidationError, match="timezone"):
        Silence.model_validate({"until": "2026-03-02T12:00:00"})


def test_a_drop_finishes_the_alert_and_wait_for_room_prevents_it() -> None:
    outcomes: list[tuple[str, Outcome]] = []

    async def scenario() -> None:
        down = Receiver()
        try:
            notifier = Notifier(
                [destination("down", "webhook", down.url)],
                retry=FAST,
                queue_size=2,
                on_outcome=lambda name, outcome: outcomes.append((name, outcome)),
            )
            async with notifier:
                held = [notifier.submit(alert(f"queue:q{n}")) for n in range(2)]
                dropped = notifier.submit(alert("queue:q2"))
                assert dropped.done()
                room = asyncio.create_task(notifier.wait_for_room())
                await asyncio.sleep(0.2)
                assert not room.done()  # two unfinished: a third could fill a queue
                await down.listen()
                await asyncio.wait_for(room, 5)
                await asyncio.wait_for(asyncio.gather(*held), 5)
        finally:
            await down.stop()
        assert [body["scope"] for body in down.delivered] == ["queue:q0", "queue:q1"]

    run(scenario())
    assert outcomes.count(("down", "dropped")) == 1


def test_close_cancels_what_is_not_finished() -> None:
    async def scenario() -> None:
        down = Receiver()
        try:
            notifier = Notifier([destination("down", "teams", down.url)], retry=FAST)
            async with notifier:
                finished = notifier.submit(alert())
                await asyncio.sleep(0.1)
            assert finished.cancelled()
            async with Notifier([]) as nowhere:
                assert nowhere.submit(alert()).done()
        finally:
            await down.stop()

    run(scenario())


def test_webhook_url_never_appears_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    replies = [Reply(500), Reply(429), Reply(504, delay=1.0), Reply(404)]

    async def scenario() -> None:
        receiver = Receiver(replies)
        never = Receiver()  # refuses every connection
        try:
            destinations = [
                destination("billing-slack", "slack", receiver.url, timeout_seconds=0.3),
                destination("refused", "discord", never.url),
            ]
            async with Notifier(destinations, retry=FAST) as notifier:
                notifier.submit(alert("queue:billing"))
                notifier.submit(alert("queue:support"))
                await asyncio.sleep(0.2)
                await receiver.listen()
                await receiver.wait_delivered(1, timeout=5)
            assert [request.status for request in receiver.requests] == [500, 429, 504, 404, 200]
        finally:
            await receiver.stop()
            await never.stop()

    run(scenario())
    formatter = logging.Formatter("%(name)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "billing-slack" in logged
    assert "refused" in logged
    assert "HTTP 500" in logged
    assert "timeout" in logged
    assert "alerts not delivered" in logged
    assert SECRET not in logged
    assert "/hooks/" not in logged


def test_destination_hides_its_url() -> None:
    chat = destination("ops", "slack", f"https://hooks.slack.com/services/{SECRET}")
    assert SECRET not in repr(chat) + str(chat) + chat.model_dump_json()
    assert chat.url.get_secret_value().endswith(SECRET)
    with pytest.raises(ValidationError) as error:
        destination("ops", "slack", f"ftp://hooks.example.com/{SECRET}")
    assert SECRET not in str(error.value)
    with pytest.raises(ValidationError):
        ChatDestination.model_validate({"name": "x", "kind": "irc", "url": "https://x"})


# --- wording and escaping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "label"),
    [
        ("all", "All queues"),
        ("queue:billing", "Billing queue"),
        ("priority:P1", "P1 priority"),
        ("channel:email", "Email channel"),
        ("tag:refund", "tag:refund"),
    ],
)
def test_scope_label(scope: str, label: str) -> None:
    assert scope_label(scope) == label


def test_plain_text_reads_like_the_chat_message() -> None:
    firing = alert(summary=f"billing: inflow 214/day now exceeds outflow 188/day ({DASHBOARD})")
    assert plain_text(firing, DASHBOARD) == (
        "Firing: inflow above outflow in Billing queue\n"
        "billing: inflow 214/day now exceeds outflow 188/day\n"
        f"Dashboard: {DASHBOARD}"
    )
    resolved = plain_text(alert("all", "resolved"), None)
    assert resolved.startswith("Resolved: inflow above outflow in All queues\n")
    assert "Dashboard" not in resolved


def test_render_is_json() -> None:
    for kind in get_args(Kind):
        json.dumps(render(alert(), kind, None))


tricky = st.lists(
    st.sampled_from(["@", "<", ">", "!", "&", "channel", "HERE", "all", "everyone", "users/", " "])
).map("".join)


@given(st.one_of(tricky, st.text()))
def test_escaping_never_leaves_a_mention(text: str) -> None:
    for escaped in (break_mentions(text), escape_slack(text), escape_google_chat(text)):
        assert not MENTION.search(escaped)
    assert break_mentions(text).replace(ZERO_WIDTH_SPACE, "") == text.replace(ZERO_WIDTH_SPACE, "")
    assert not re.search("[<>]", escape_slack(text))
    assert "<users/" not in escape_google_chat(text)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# Names as long as events may make them (256), in what costs most: CJK and astral
# characters (six bytes or two UTF-16 units a character as sent), "&" (five as HTML).
LONG_NAMES = ["請" * 256, "&" * 256, "\U0001f525" * 256, "v" * 256]


@pytest.mark.parametrize("name", LONG_NAMES, ids=["cjk", "ampersands", "astral", "ascii"])
def test_a_group_of_twenty_long_alerts_stays_within_every_platform_s_limits(name: str) -> None:
    """Over a limit the platform answers 400 and every alert of the group would be lost."""
    forecast = (
        " at this pace back in band by 14 Mar (85%); 12 more closes a day would make it 6 Mar"
    )
    records = [
        alert(f"queue:{name}{n}", summary=f"{name}{n}: inflow 214/day now exceeds outflow "
              f"188/day; 42 open as of 2026-03-02T14:00:00Z;{forecast}")
        for n in range(20)
    ]  # fmt: skip
    for kind in get_args(Kind):
        if kind == "webhook":
            continue
        payload = render_group(records, kind, DASHBOARD)
        sent = len(json.dumps(payload).encode())  # as aiohttp's json= writes it
        if kind == "discord":
            [embed] = payload["embeds"]
            total = utf16(embed["title"] + embed["description"] + embed["footer"]["text"])
            total += sum(utf16(f["name"] + f["value"]) for f in embed["fields"])
            assert total <= 6000
            assert utf16(embed["description"]) <= 4096
            assert utf16(payload["content"]) <= 2000
            assert embed["description"].endswith(" more")
        elif kind == "slack":
            header, section, facts, _ = payload["blocks"]
            assert len(header["text"]["text"]) <= 150
            assert len(section["text"]["text"]) <= 3000
            assert section["text"]["text"].endswith(" more")
            assert all(len(field["text"]) <= 2000 for field in facts["fields"])
        elif kind == "teams":
            assert sent <= 28 * 1024
        elif kind == "google_chat":
            assert sent <= 32_000
        elif kind == "mattermost":
            assert len(payload["attachments"][0]["text"]) <= 7_900
            assert payload["props"]["alert_ids"] == [record.alert_id for record in records]


@pytest.mark.parametrize("kind", get_args(Kind))
def test_ticket_text_opens_no_link_starts_no_heading_and_mentions_no_one(kind: Kind) -> None:
    """A queue name is anyone's to write: it must not turn a trusted bot's alert into a
    phishing link, a heading, or a ping of a person."""
    queue = "[Password expired, sign in](https://evil.example/login)\n# URGENT\n> @alice"
    record = alert(f"queue:{queue}", summary=f"{queue}: inflow 214/day now exceeds outflow")
    payload = render(record, kind, None)
    if kind == "webhook":  # the record itself, for a program: nothing is rendered
        assert payload["scope"] == record.scope
        return
    payload.pop("props", None)  # Mattermost's: data for integrations, never shown
    shown = strings(payload)
    assert "](" not in shown
    assert "://evil" not in shown
    assert not re.search(r"@\w", shown)
    lines = [line for text in shown.split("\n") for line in text.splitlines()]
    assert "# URGENT" not in [line.strip() for line in lines]  # no line of its own
    assert "Password expired, sign in" in shown  # still readable


# --- grouping -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [kind for kind in CHECKS if kind != "webhook"])
def test_alerts_within_the_group_interval_go_as_one_message_naming_each(kind: Kind) -> None:
    """Three transitions close together make one message with every alert_id; one that
    comes after the interval makes a message of its own."""
    records = [alert("queue:billing"), alert("all"), alert("queue:billing", "resolved")]
    late = alert("queue:tech")

    async def scenario() -> None:
        async with Receiver() as receiver:
            chat = destination("team", kind, receiver.url, group_seconds=0.3)
            async with Notifier([chat], DASHBOARD) as notifier:
                for record in records:
                    notifier.submit(record)
                assert await notifier.join(5)
                notifier.submit(late)
                assert await notifier.join(5)
            bodies = receiver.delivered
        assert len(bodies) == 2
        shown = strings(bodies[0])
        for record in records:
            assert record.alert_id in shown
        assert "3 alert changes" in shown
        assert "2 firing, 1 resolved" in shown
        assert late.alert_id not in shown
        assert late.alert_id in strings(bodies[1])
        assert "alert changes" not in strings(bodies[1])  # alone, as without grouping
        assert not MENTION.search(shown)

    run(scenario())


def test_a_group_is_finished_only_once_its_message_is_accepted() -> None:
    """The offsets of grouped alerts commit when the group is accepted: until the
    destination takes the message, no alert of it is finished."""
    records = [alert("queue:billing"), alert("queue:tech")]

    async def scenario() -> None:
        async with Receiver([Reply(503), Reply(503)]) as receiver:
            chat = destination("team", "slack", receiver.url, group_seconds=0.2)
            async with Notifier([chat], retry=FAST) as notifier:
                finished = [notifier.submit(record) for record in records]
                await receiver.wait_requests(2, timeout=5)
                assert not any(future.done() for future in finished)
                await asyncio.wait_for(asyncio.gather(*finished), 5)
            assert [request.status for request in receiver.requests] == [503, 503, 200]
            assert len(receiver.delivered) == 1

    run(scenario())


def test_a_webhook_destination_is_never_grouped() -> None:
    with pytest.raises(ValidationError, match="never grouped"):
        destination("machine", "webhook", "https://example.com/hook", group_seconds=10)
    with pytest.raises(ValueError, match="one record per message"):
        render_group([alert(), alert("all")], "webhook", None)
