"""Preloaded by the daemon tests' fork server: topic dictionaries loaded once, for every fork.

A daemon loads them at its first new ticket (about half a second from the cache); the kill -9
test restarts the daemon 25 times in seconds, which would otherwise spend most of its time
loading dictionaries instead of taking mail.
"""

from mailbot.pipeline import topics

topics.warm()
