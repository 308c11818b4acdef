"""mailbot: email ticketing daemon for a support address."""
