"""streamproc: a streaming portfolio-drift monitor that turns band breaches into micro-rebalance orders."""

__version__ = "0.1.0"
