"""Pure forecasting and deviation logic: no Kafka, no I/O."""
