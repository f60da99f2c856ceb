"""What every process of the service shares to run: the Temporal connection and client
(runtime/client.py), the encrypting data converter (runtime/codec.py), tracing
(runtime/telemetry.py) and the hot-reloaded YAML configuration files
(runtime/config_files.py). Importing this package imports none of them."""
