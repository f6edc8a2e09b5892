"""flowgauge: inflow, outflow, backlog level and aging of a support queue, in event time."""
