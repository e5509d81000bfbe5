"""The Faust application: topics, agents, the price feed, the evaluator; where Kafka, Redis and core meet."""
