"""Holidays in the business calendar: explicit dates and a country's, worked by hand."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from streams.config import FlowgaugeConfig
from streams.core.sla import HOUR_US, Calendar, SlaPolicy
from streams.core.timeline import to_us
from tests.test_sla import event, sla_rows

GRACE_US = 600 * 1_000_000
BERLIN = ZoneInfo("Europe/Berlin")
WORKWEEK = frozenset(range(5))
MAY_DAY = date(2025, 5, 1)  # Thursday 1 May 2025, Labour Day: a public holiday in all of DE


def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar: str) -> FlowgaugeConfig:
    """The configuration of a TOML file holding ``calendar`` as its ``[sla.calendar]``."""
    toml = tmp_path / "flowgauge.toml"
    toml.write_text("[sla.calendar]\n" + calendar)
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(toml))
    return FlowgaugeConfig()


BERLIN_DE = 'timezone = "Europe/Berlin"\ncountry = "DE"\n'

# A P2 ticket (first response 4 business hours, resolution 3 business days = 24 working
# hours of a 09:00-17:00 calendar) created on Wednesday 30 April 2025 at 15:30 in Berlin
# (CEST, UTC+2), the working day before May Day. The log runs on to 7 May.
TICKET = [
    event("created", "2025-04-30T13:30:00Z", priority="P2"),
    event("customer_replied", "2025-05-07T12:00:00Z"),  # keeps the log running
]


def test_a_country_holiday_stops_the_breach_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = configured(tmp_path, monkeypatch, BERLIN_DE).core().sla
    assert policy.calendar is not None
    assert MAY_DAY in policy.calendar.holidays
    # First response, 4 h: Wed 15:30-17:00 is 1.5 h; Thu 1 May is a holiday; Fri 2 May
    # from 09:00, 2.5 h more: due Fri 11:30 CEST = 09:30Z. At risk with 1 h left, after
    # 3 h used: Fri 10:30 CEST = 08:30Z.
    # Resolution, 24 h: Wed 1.5 h (22.5 left), Fri 8 h (14.5 left), Mon 5 May 8 h (6.5
    # left), Tue 6 May 09:00 + 6.5 h = 15:30 CEST = 13:30Z. At risk after 18 h used: Wed
    # 1.5, Fri 8, Mon 8 (17.5), Tue 09:30 CEST = 07:30Z.
    assert sla_rows(TICKET, policy) == [
        ["T1", "first_response", "at_risk", "2025-05-02T09:30:00Z", "2025-05-02T08:30:00Z"],
        ["T1", "first_response", "breached", "2025-05-02T09:30:00Z", "2025-05-02T09:30:00Z"],
        ["T1", "resolution", "at_risk", "2025-05-06T13:30:00Z", "2025-05-06T07:30:00Z"],
        ["T1", "resolution", "breached", "2025-05-06T13:30:00Z", "2025-05-06T13:30:00Z"],
    ]


def test_without_the_holiday_the_same_clock_runs_through_may_day() -> None:
    policy = SlaPolicy(calendar=Calendar("Europe/Berlin", WORKWEEK, time(9), time(17)))
    # First response: Wed 1.5 h, then Thu 1 May 09:00 + 2.5 h = 11:30 CEST = 09:30Z.
    rows = sla_rows(TICKET, policy)
    assert rows[1] == [
        "T1", "first_response", "breached", "2025-05-01T09:30:00Z", "2025-05-01T09:30:00Z"
    ]  # fmt: skip


def test_an_explicit_date_adds_to_the_country_holidays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Friday 2 May 2025 off as well (a bridge day), as a TOML date and as a string.
    for listed in ("2025-05-02", '"2025-05-02"'):
        config = configured(tmp_path, monkeypatch, f"{BERLIN_DE}holidays = [{listed}]\n")
        policy = config.core().sla
        assert policy.calendar is not None
        assert {MAY_DAY, date(2025, 5, 2)} <= policy.calendar.holidays
        # First response, 4 h: Wed 1.5 h; Thu and Fri off; Mon 5 May 09:00 + 2.5 h =
        # 11:30 CEST = 09:30Z; at risk after 3 h: Mon 10:30 CEST = 08:30Z.
        # Resolution, 24 h: Wed 1.5, Mon 8, Tue 8 (17.5), Wed 7 May 09:00 + 6.5 h = 15:30
        # CEST = 13:30Z; at risk after 18 h: Wed 7 May 09:30 CEST = 07:30Z. The log ends
        # at 12:00Z that day, so the breach is not reached.
        assert sla_rows(TICKET, policy) == [
            ["T1", "first_response", "at_risk", "2025-05-05T09:30:00Z", "2025-05-05T08:30:00Z"],
            ["T1", "first_response", "breached", "2025-05-05T09:30:00Z", "2025-05-05T09:30:00Z"],
            ["T1", "resolution", "at_risk", "2025-05-07T13:30:00Z", "2025-05-07T07:30:00Z"],
        ]


def test_explicit_dates_alone_make_a_calendar_with_holidays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configured(
        tmp_path, monkeypatch, 'timezone = "Europe/Berlin"\nholidays = [2025-05-01]\n'
    )
    calendar = config.core().sla.calendar
    assert calendar == Calendar("Europe/Berlin", WORKWEEK, time(9), time(17), frozenset({MAY_DAY}))
    # The same first-response breach as with the country's May Day.
    assert sla_rows(TICKET, SlaPolicy(calendar=calendar))[1] == [
        "T1", "first_response", "breached", "2025-05-02T09:30:00Z", "2025-05-02T09:30:00Z"
    ]  # fmt: skip


def test_a_subdivision_adds_its_own_holidays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Epiphany (6 January) is a public holiday in Bavaria, not in Berlin.
    epiphany = date(2025, 1, 6)
    germany = configured(tmp_path, monkeypatch, BERLIN_DE).core().sla.calendar
    bavaria = configured(tmp_path, monkeypatch, f'{BERLIN_DE}subdivision = "by"\n')
    assert bavaria.sla.calendar is not None
    assert bavaria.sla.calendar.subdivision == "BY"
    assert germany is not None
    assert epiphany not in germany.holidays
    calendar = bavaria.core().sla.calendar
    assert calendar is not None
    assert epiphany in calendar.holidays


def test_country_holidays_cover_the_years_events_may_have() -> None:
    config = FlowgaugeConfig.model_validate({"sla": {"calendar": {"country": "us"}}})
    calendar = config.core().sla.calendar
    assert calendar is not None
    assert config.sla.calendar is not None
    assert config.sla.calendar.country == "US"
    # Independence Day in the first and the last year an event may be dated in.
    assert {date(2000, 7, 4), date(2099, 7, 4)} <= calendar.holidays


def at(text: str) -> int:
    return to_us(datetime.fromisoformat(text).replace(tzinfo=BERLIN))


def test_is_business_day_and_working_time_skip_a_holiday() -> None:
    calendar = Calendar("Europe/Berlin", WORKWEEK, time(9), time(17), frozenset({MAY_DAY}))
    assert calendar.is_business_day(date(2025, 4, 30))  # Wednesday
    assert not calendar.is_business_day(MAY_DAY)  # Thursday, a holiday
    assert calendar.is_business_day(date(2025, 5, 2))  # Friday
    assert not calendar.is_business_day(date(2025, 5, 3))  # Saturday
    # Wed 16:00 to Fri 10:00: 1 h on Wednesday, none on Thursday, 1 h on Friday.
    assert calendar.working_us(at("2025-04-30T16:00"), at("2025-05-02T10:00")) == 2 * HOUR_US
    assert calendar.working_us(at("2025-05-01T09:00"), at("2025-05-01T17:00")) == 0
    # Without the holiday Thursday's 8 h count too.
    plain = Calendar("Europe/Berlin", WORKWEEK, time(9), time(17))
    assert plain.working_us(at("2025-04-30T16:00"), at("2025-05-02T10:00")) == 10 * HOUR_US
    # And advancing 2 h from Wednesday 16:00 lands on Friday 10:00.
    assert calendar.advance(at("2025-04-30T16:00"), 2 * HOUR_US) == at("2025-05-02T10:00")


@pytest.mark.parametrize(
    ("calendar", "key", "message"),
    [
        ('country = "XX"\n', "sla.calendar.country", "'XX' is no country"),
        ('country = "DE"\nsubdivision = "ZZ"\n', "sla.calendar.subdivision", "'ZZ' is no subdiv"),
        ('subdivision = "BY"\n', "sla.calendar.subdivision", "a subdivision needs a country"),
        ('holidays = ["2025-13-01"]\n', "sla.calendar.holidays.0", "valid date"),
        ('holidays = ["May Day"]\n', "sla.calendar.holidays.0", "valid date"),
    ],
)
def test_bad_holiday_settings_are_refused_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar: str, key: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        configured(tmp_path, monkeypatch, calendar)
    errors = refused.value.errors()
    assert [".".join(str(part) for part in error["loc"]) for error in errors] == [key]
    assert message in errors[0]["msg"]
    assert key in str(refused.value)
