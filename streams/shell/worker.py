"""``flowgauge worker``: create the topics, install the workarounds, run the app."""

from __future__ import annotations

import asyncio

import faust

from streams.config import FlowgaugeConfig
from streams.kafka import Kafka
from streams.outputs.metrics import drop_created_series
from streams.shell.app import build_app
from streams.shell.topics import declared_topics, ensure_topics, missing_topics, refuse_missing
from streams.workarounds import commits, gaps, redeclare, stacks, tansu


class Worker(faust.Worker):
    """Faust's worker, whose SIGUSR1 dump follows each task into its async generators and
    ends with the state of every assigned partition."""

    async def _cry(self) -> None:
        dump = f"{stacks.all_stacks()}\n{gaps.describe_partitions(self.app.consumer)}"
        print(dump, file=self.stderr, flush=True)


def run_worker(config: FlowgaugeConfig) -> int:
    """Create the input topic if needed, then run until stopped."""
    kafka = Kafka.of(config)
    layout = asyncio.run(ensure_topics(config, kafka))
    tansu.install_recovery_fix(kafka)
    tansu.install_fetch_wait()
    drop_created_series()
    gaps.install_gap_check(kafka)
    commits.install_member_commits()
    app = build_app(config, layout, kafka)
    declared = declared_topics(app, layout)
    missing = asyncio.run(missing_topics(kafka, declared))
    if not config.create_topics:
        refuse_missing(missing)
    else:  # a broker that lost its log has lost the topics too: declare them again
        redeclare.install(redeclare.Declarer(kafka, declared))
    worker = Worker(app, loglevel=config.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
