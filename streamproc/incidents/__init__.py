"""Incident reports: alert episodes from the alerts topic, with what they did to the book, for the
report an on-call engineer files afterwards (`streamproc incident report`)."""
