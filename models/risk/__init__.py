"""Institution risk 机构风险: a ledger of what each institution billed and a score against its peers."""
