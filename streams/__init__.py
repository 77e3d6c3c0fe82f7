"""Kafka lives here: the Faust app, topics, agents and tables (the event records: contract/)."""
