"""Pure detection logic for zhijian: contracts, rules and online detectors.

Nothing in this package imports Faust or a Kafka client; every module here is
testable with plain dictionaries.
"""
