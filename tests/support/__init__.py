"""Helpers shared by the test suites (tests/unit, tests/e2e): one of each kind.

- ``server``: ServerProcess (the real server as a subprocess), server_env, free_port
- ``client``: RawConn, the raw HTTP/1.1 client with deadlines, and helpers on it
- ``supervisors``, ``ops``: what the supervisor and operations tests add to those
- ``inproc``: the compiled protocol in-process over a fake transport and clock
- ``wire_cases``: the wire tables both suites run
"""
