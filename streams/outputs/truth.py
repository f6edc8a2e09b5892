"""The ground truth of a simulated scenario: when each scope's inflow structurally exceeds
what its team can close, and when other rules should fire (``flowgauge simulate --scenario
NAME --truth F``; its schema is ``schemas/truth.schema.json``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# As the events' occurred_at: to the second, in UTC, with Z.
MOMENT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(pattern=MOMENT, description="first moment inside, ISO 8601 UTC")
    end: str = Field(pattern=MOMENT, description="first moment after, ISO 8601 UTC")


class RuleTruth(BaseModel):
    """When one rule other than the headline should fire, per scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    means: str = Field(description="what an interval is, in words, with its threshold")
    scopes: dict[str, list[Interval]] = Field(
        description="all and queue:NAME for every queue: intervals in time order, disjoint"
    )


class Truth(BaseModel):
    """For each scope, the intervals in which the expected arrivals, without the weekday and
    hour factors, are at least (1 + imbalance) times the expected closing capacity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(description="the simulator's scenario name")
    seed: int = Field(description="the simulator's seed (the truth does not depend on it)")
    start: str = Field(pattern=MOMENT, description="start of the run, ISO 8601 UTC")
    end: str = Field(pattern=MOMENT, description="end of the run (excluded), ISO 8601 UTC")
    imbalance: float = Field(ge=0, description="0.1: arrivals at least 1.1 times capacity")
    scopes: dict[str, list[Interval]] = Field(
        description="all and queue:NAME for every queue: intervals in time order, disjoint"
    )
    rules: dict[str, RuleTruth] = Field(
        default_factory=dict,
        description="other rules by name (driver_spike, reopen_rate_high): when they should"
        " fire; a rule not named here is scored without truth",
    )

    def to_text(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


EXAMPLE = Truth(
    scenario="surge",
    seed=1,
    start="2026-03-02T00:00:00Z",
    end="2026-03-23T00:00:00Z",
    imbalance=0.1,
    scopes={
        "all": [Interval(start="2026-03-10T00:00:00Z", end="2026-03-13T00:00:00Z")],
        "queue:billing": [Interval(start="2026-03-10T00:00:00Z", end="2026-03-13T00:00:00Z")],
        "queue:sales": [],
    },
    rules={
        "driver_spike": RuleTruth(
            means="a tag's expected share of new tickets is at least 3 times its usual share",
            scopes={
                "all": [Interval(start="2026-03-10T00:00:00Z", end="2026-03-13T00:00:00Z")],
                "queue:billing": [],
                "queue:sales": [],
            },
        )
    },
)
