"""The hosted opt-in page: a real web form for double opt-in, with SMS-pumping protection."""
