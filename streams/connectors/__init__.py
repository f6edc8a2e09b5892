"""Helpdesk payloads -> ticket events: the pure mapping behind ``flowgauge gateway`` and
``flowgauge convert``, one module per kind in ``streams.connectors.kinds``."""
