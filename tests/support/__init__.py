"""What the tests share: fixtures (loaded for every test by ``pytest_plugins`` in
tests/conftest.py) and harnesses (imported by the tests that use them)."""
