"""Sources that accept mail and store it durably in the inbound table."""
