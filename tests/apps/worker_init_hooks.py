"""``--worker-init`` functions for tests/e2e/test_json_logs_worker_init.py.

``record`` appends this process's id to ``$WORKER_INIT_DIR/init.pids`` and remembers that
it ran here (``ran_in``), so that ``jsonlog_app`` can tell, when it is imported, whether
the init came first. The others fail in the ways the server must report.
"""

import os

#: the process id ``record`` ran in (None: not in this process)
ran_in = None


def record():
    global ran_in
    ran_in = os.getpid()
    with open(os.path.join(os.environ["WORKER_INIT_DIR"], "init.pids"), "a") as file:
        file.write(f"{ran_in}\n")


def boom():
    raise RuntimeError("the tracer could not be set up")


async def coroutine_init():
    pass


not_a_function = 42
