"""Bridge benchmark: `python -m bench.run --help`, or `make bench`.

Modules:
    machine    what the numbers were measured on; /proc readers for RSS and CPU
    targets    the server under test (start/stop, base URLs, pids), apart from
               the scenarios so that several targets can run in one invocation
    reference  the in-memory reference bridge (bare ASGI) Bridge is compared to
    load       the client side: WebSocket receivers, HTTP pushers, the ledger
    scenarios  S1..S6 and how one scenario is run against one target
    report     the table and the JSON file
    run        the command line
"""
