"""The delivery stage: a rendered digest becomes one message per subscriber, sent exactly once."""
