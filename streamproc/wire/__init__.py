"""The wire contract v1: schemas/ compiled into validators, orjson codecs, deterministic ids."""
