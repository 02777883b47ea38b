"""The floor of bench/inbound.py: the least a Django webhook can do (verify a Twilio signature, one INSERT)."""
