"""Keep every topic the worker writes to in its producer's metadata refreshes.

aiokafka's client refreshes metadata for all topics until the first send to a topic it
has not seen; from then on it asks only for the topics it was told about, and the
answer replaces what it knew. A batch already queued for a topic outside that list
then has no known leader, and each refresh leaves it so: the producer waits until
the request timeout (20 minutes under Faust), and a stage awaiting its acks stalls
with it. Naming every produced topic up front makes each refresh cover them all.

Works around aiokafka's metadata refresh, which after the first send asks only for the
topics it was told about. Remove once aiokafka's producer keeps every topic it has queued
batches for in its refreshes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


async def track_topics(producer: Any, topics: Iterable[str]) -> None:
    """``producer`` is Faust's aiokafka producer driver (``app.producer``)."""
    client = producer._ensure_producer().client
    for topic in topics:
        client.add_topic(topic)
    await client.force_metadata_update()
