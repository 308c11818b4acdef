"""Incoming and outgoing mail handling: parsing, quotes, composition."""
