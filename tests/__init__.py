"""mailbot test suite."""
