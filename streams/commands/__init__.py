"""The ``flowgauge`` command and what its subcommands run: report, simulate, replay, demo,
docs, the embedded broker."""
