"""Pure-logic tests of streamproc.core: no Kafka, no Redis."""
