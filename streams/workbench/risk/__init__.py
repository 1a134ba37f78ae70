"""The institution risk score 机构风险评分: the ledger, the peer-normalised score, and `zhijian risk`."""
