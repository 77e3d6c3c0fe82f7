"""Kafka lives here: the Faust app, topics, event records, agents and tables."""
