"""Insurance-claim detectors 医保智能监控 (违规, 欺诈骗保)."""
