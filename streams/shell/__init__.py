"""The Faust app: one module per stage, each owning its tables and batch loop; the heartbeat,
the intake watch, topic creation, and the codec of the internal topics."""
