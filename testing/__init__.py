"""Helpers shared by the tests: real git repositories, the real server, the real launcher."""
