"""Redis: the durable account and price state, its key layout, pipelined loads and writes."""
