"""The message each chat destination gets for an alert transition: pure, no I/O.

``render`` builds the JSON body a platform's incoming webhook takes; ``plain_text`` is the same
message as it reads in a terminal. Text that comes from tickets (queue, priority and channel
names inside the scope and the summary, tags) is anyone's to write: it can mention no one,
open no link and start no heading or quote, and it is escaped per platform. A message stays
within its platform's limits however many alerts a group holds and however long the names:
a platform refuses a message over them (400), and the alerts in it would be lost.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.config import Kind
from streams.outputs.records import AlertRecord

Payload = dict[str, Any]

ZERO_WIDTH_SPACE = "\u200b"
# A zero-width space after "@" keeps the text readable and stops every platform's parser:
# @channel, @here, @all, @everyone, and a user or group (Mattermost mentions @alice).
_MENTION = re.compile(r"@(?=\w)")
# A Markdown link (Teams, Discord, Mattermost) and a bare URL, which they all link.
_LINK = re.compile(r"\]\(|://")
DISCORD_EMBED_TOTAL = 6000  # title, description, fields, footer together (UTF-16 units)
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
_SCOPE_KINDS = frozenset({"queue", "priority", "channel"})
_FIRING_COLOR = 0xD93F0B
_RESOLVED_COLOR = 0x2EB67D


def break_mentions(text: str) -> str:
    """Neutralise every @mention (@channel, @everyone, @alice) with a zero-width space."""
    return _MENTION.sub("@" + ZERO_WIDTH_SPACE, text)


def defused(text: str) -> str:
    """Ticket text on one line (no heading, quote or list of its own), its links broken."""
    return _LINK.sub(
        lambda link: link[0][0] + ZERO_WIDTH_SPACE + link[0][1:], " ".join(text.split())
    )


def escape_slack(text: str) -> str:
    """Slack mrkdwn: &, < and > as entities, which also defuses <!channel>, <!here>, <!everyone>."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return break_mentions(escaped)


def escape_google_chat(text: str) -> str:
    """Google Chat message text: <users/all> mentions everyone, so no "<" may open a token."""
    return break_mentions(text).replace("<", "<" + ZERO_WIDTH_SPACE)


def escape_html(text: str) -> str:
    """Google Chat card text, which is HTML."""
    return html.escape(break_mentions(text), quote=False)


def scope_label(scope: str) -> str:
    """``all`` -> "All queues", ``queue:billing`` -> "Billing queue", ``channel:email`` -> "Email
    channel"; anything else as it is."""
    if scope == "all":
        return "All queues"
    kind, _, name = scope.partition(":")
    if kind not in _SCOPE_KINDS or not name:
        return scope
    return f"{name[:1].upper()}{name[1:]} {kind}"


@dataclass(frozen=True, slots=True)
class Message:
    """What every platform shows, before platform escaping."""

    firing: bool
    state: str
    rule: str
    scope: str
    summary: str
    facts: tuple[tuple[str, str], ...]
    alert_id: str
    dashboard_url: str | None

    @property
    def title(self) -> str:
        return f"{self.state}: {self.rule} in {self.scope}"

    @property
    def mark(self) -> str:
        return "\N{LARGE RED CIRCLE}" if self.firing else "\N{WHITE HEAVY CHECK MARK}"

    @property
    def headline(self) -> str:
        return f"{self.mark} {self.title}"


def message(record: AlertRecord, dashboard_url: str | None) -> Message:
    firing = record.state == "firing"
    summary = record.summary
    if dashboard_url:
        # describe() may already end with the link; every platform shows it as a button instead.
        summary = summary.removesuffix(f" ({dashboard_url})")
    summary, scope = defused(summary), defused(scope_label(record.scope))
    facts = (
        ("Scope", scope),
        ("State", record.state),
        ("At", record.at),
        ("Value", f"{record.value:g} (threshold {record.threshold:g})"),
        ("Alert ID", defused(record.alert_id)),  # it holds the scope: shown, not data
    )
    return Message(
        firing=firing,
        state="Firing" if firing else "Resolved",
        rule=record.rule.replace("_", " "),
        scope=scope,
        summary=summary,
        facts=facts,
        alert_id=defused(record.alert_id),
        dashboard_url=dashboard_url or None,
    )


def plain_text(record: AlertRecord, dashboard_url: str | None) -> str:
    """The chat message as it reads without formatting, e.g. for ``flowgauge demo``."""
    shown = message(record, dashboard_url)
    lines = [shown.title, shown.summary]
    if shown.dashboard_url:
        lines.append(f"Dashboard: {shown.dashboard_url}")
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    """Platforms reject a whole message over a field's limit; losing the tail is better."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _clip_lines(text: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """A group's lines that fit in ``limit``, then how many more there were (every alert id
    is in the facts): whole lines, so no escaped entity is cut in half."""
    lines = text.split("\n")
    if measure(text) <= limit:
        return text
    for kept in range(len(lines) - 1, -1, -1):
        shown = "\n".join([*lines[:kept], f"{ELLIPSIS} and {len(lines) - kept} more"])
        if measure(shown) <= limit:
            return shown
    first = _clip(lines[0], limit)  # a limit too small even for the count of lines
    return first if measure(first) <= limit else ""


def _utf16(text: str) -> int:
    """Characters as Discord counts them (JavaScript's string length)."""
    return len(text.encode("utf-16-le")) // 2


def slack(shown: Message) -> Payload:
    """Slack incoming webhook, Block Kit. The header holds no ticket text (plain_text)."""
    rule_header = f"{shown.mark} {shown.state}: {shown.rule}"
    scope = _clip(f"*{escape_slack(shown.scope)}*", 300)
    section = f"{scope}\n{_clip_lines(escape_slack(shown.summary), 3000 - len(scope) - 1)}"
    blocks: list[Payload] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(rule_header, 150)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(section, 3000)},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{label}*\n{escape_slack(value)}", 2000)}
                for label, value in shown.facts
            ],
        },
    ]
    if shown.dashboard_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open dashboard"},
                        "url": shown.dashboard_url,
                    }
                ],
            }
        )
    fallback = f"{shown.headline}: {shown.summary}"
    return {"text": _clip(escape_slack(fallback), 3000), "blocks": blocks}


def teams(shown: Message) -> Payload:
    """Microsoft Teams Workflows webhook: an Adaptive Card in a message envelope."""
    card: Payload = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": _clip(break_mentions(shown.headline), 300),
                "weight": "Bolder",
                "size": "Medium",
                "color": "Attention" if shown.firing else "Good",
                "wrap": True,
            },
            # A TextBlock breaks lines at a blank line only. Within the 28 KB a message may
            # take, non-ASCII text written as \uXXXX (six bytes a character) included.
            {
                "type": "TextBlock",
                "text": _clip_lines(break_mentions(shown.summary), 2500).replace("\n", "\n\n"),
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [
                    {"title": label, "value": _clip(break_mentions(value), 500)}
                    for label, value in shown.facts
                ],
            },
        ],
    }
    if shown.dashboard_url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open dashboard", "url": shown.dashboard_url}
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def discord(shown: Message, at: str) -> Payload:
    """Discord webhook: one embed; allowed_mentions parses nothing, whatever the text says."""
    title = _clip(break_mentions(shown.scope), 256)
    facts = [(label, _clip(break_mentions(value), 1024)) for label, value in shown.facts]
    footer = _clip(break_mentions(shown.alert_id), 256)  # a group's ids are in its fields
    taken = _utf16(title + footer) + sum(_utf16(label + value) for label, value in facts)
    description = _clip_lines(
        break_mentions(shown.summary), min(4096, DISCORD_EMBED_TOTAL - taken), _utf16
    )
    embed: Payload = {
        "title": title,
        "description": description,
        "color": _FIRING_COLOR if shown.firing else _RESOLVED_COLOR,
        "fields": [{"name": label, "value": value, "inline": True} for label, value in facts],
        "footer": {"text": footer},
        "timestamp": at,
    }
    if shown.dashboard_url:
        embed["url"] = shown.dashboard_url
    return {
        "content": _clip(break_mentions(shown.headline), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def mattermost(shown: Message, props: Payload) -> Payload:
    """Mattermost incoming webhook: a colored attachment; ids also in props for integrations."""
    attachment: Payload = {
        "fallback": _clip(break_mentions(f"{shown.headline}: {shown.summary}"), 1000),
        "color": f"#{_FIRING_COLOR if shown.firing else _RESOLVED_COLOR:06X}",
        "title": _clip(break_mentions(shown.scope), 300),
        # Servers before 5.0 took about 7,900 characters an attachment.
        "text": _clip_lines(break_mentions(shown.summary), 6000),
        "fields": [
            {"title": label, "value": _clip(break_mentions(value), 1000), "short": True}
            for label, value in shown.facts
        ],
    }
    if shown.dashboard_url:
        attachment["title_link"] = shown.dashboard_url
    return {
        "text": break_mentions(shown.headline),
        "attachments": [attachment],
        "props": props,
    }


def google_chat(shown: Message) -> Payload:
    """Google Chat webhook: a text line (Chat syntax) and a card (HTML text)."""
    widgets: list[Payload] = [
        {
            # Within the 32,000 bytes a message may take: "&" escapes to five characters, and
            # non-ASCII text goes as \uXXXX, six bytes a character.
            "textParagraph": {
                "text": f"<b>{escape_html(_clip(shown.scope, 256))}</b><br>"
                + _clip_lines(escape_html(shown.summary), 2500).replace("\n", "<br>")
            }
        },
        *(
            {
                "decoratedText": {
                    "topLabel": label,
                    "text": escape_html(_clip(value, 500)),
                    "wrapText": True,
                }
            }
            for label, value in shown.facts
        ),
    ]
    if shown.dashboard_url:
        link = {"openLink": {"url": shown.dashboard_url}}
        widgets.append({"buttonList": {"buttons": [{"text": "Open dashboard", "onClick": link}]}})
    return {
        "text": escape_google_chat(_clip(shown.headline, 300)),
        "cardsV2": [{"cardId": "flowgauge-alert", "card": {"sections": [{"widgets": widgets}]}}],
    }


def webhook(shown: Message, record: AlertRecord) -> Payload:
    """Generic JSON: the record as on backlog.alerts, unescaped, plus the rendered text."""
    return {
        **record.model_dump(),
        "title": shown.title,
        "scope_label": shown.scope,
        "text": plain_text(record, shown.dashboard_url),
        "dashboard_url": shown.dashboard_url,
    }


def grouped(records: Sequence[AlertRecord], dashboard_url: str | None) -> Message:
    """Several transitions as one message: a line each, and every alert_id."""
    shown = [message(record, dashboard_url) for record in records]
    firing = sum(one.firing for one in shown)
    scopes = {one.scope for one in shown}
    lines = [f"{one.mark} {one.state}: {one.rule} in {one.scope}: {one.summary}" for one in shown]
    ids = ", ".join(defused(record.alert_id) for record in records)
    return Message(
        firing=firing > 0,
        state=f"{len(records)} alert changes",
        rule=f"{firing} firing, {len(records) - firing} resolved",
        scope=scopes.pop() if len(scopes) == 1 else f"{len(scopes)} scopes",
        summary="\n".join(lines),
        facts=(("From", records[0].at), ("To", records[-1].at), ("Alert IDs", ids)),
        alert_id=ids,
        dashboard_url=dashboard_url or None,
    )


def render(record: AlertRecord, kind: Kind, dashboard_url: str | None) -> Payload:
    """The JSON body to post to a ``kind`` webhook for one transition."""
    return render_group([record], kind, dashboard_url)


def render_group(records: Sequence[AlertRecord], kind: Kind, dashboard_url: str | None) -> Payload:
    """The JSON body to post to a ``kind`` webhook for one or several transitions (never
    several for ``webhook``: its receiver takes one record per alert_id)."""
    first = records[0]
    if len(records) == 1:
        shown = message(first, dashboard_url)
        props: Payload = {"alert_id": first.alert_id, "incident_id": first.incident_id}
    elif kind == "webhook":
        raise ValueError("a webhook destination takes one record per message")
    else:
        shown = grouped(records, dashboard_url)
        props = {
            "alert_ids": [record.alert_id for record in records],
            "incident_ids": [record.incident_id for record in records],
        }
    match kind:
        case "slack":
            return slack(shown)
        case "teams":
            return teams(shown)
        case "discord":
            return discord(shown, records[-1].at)
        case "mattermost":
            return mattermost(shown, props)
        case "google_chat":
            return google_chat(shown)
        case "webhook":
            return webhook(shown, first)
