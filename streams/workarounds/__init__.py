"""What works around Faust, aiokafka or the embedded broker. Each module names the upstream
behaviour it works around, so it can go once upstream is fixed."""
