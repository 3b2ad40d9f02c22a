"""Transports: one protocol (`base.Transport`), one module per way of reaching a host."""
