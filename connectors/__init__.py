"""Sources and sinks: the embedded broker, topic management, the region simulator, file replay, alert output."""
