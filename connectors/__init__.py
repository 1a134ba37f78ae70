"""Sources and sinks: the embedded broker, topic management, traffic, alert output."""
