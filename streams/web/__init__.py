"""The web view: ``flowgauge web`` and ``report --html``, fed by the derived topics."""
