# --- the eager app driver -------------------------------------------------------------------------
#
# An app's first step runs right inside data_received: an app that never waits on anything
# (most plaintext and JSON endpoints) finishes without an asyncio.Task or a loop round-trip.
# Invariants:
# - drive() runs from the protocol's callbacks, never from inside a Task: it makes an
#   uninitialised asyncio.Task the current task for the first step (anyio, asyncio.timeout
#   and current_task() need one), and asyncio allows only one current task at a time.
# - The step runs in a copy of the current context, entered for the step and handed to the
#   Task if there is one, so context variables stay per request across suspensions.
# - The Task is initialised only when the app really suspends; from then on it drives the
#   coroutine through _continue/_Resume and the cycle learns the end from it.
# - Exactly one of RequestCycle._app_returned / _app_failed runs per request.
# - SystemExit and KeyboardInterrupt from the app propagate, as asyncio does for a Task.


# The requests the driver runs: an HTTP/1.1 RequestCycle, an HTTP/2 H2Stream. drive() is
# compiled once for each (a fused type), so every access is direct; a suspended app's Task
# end goes through _app_ended, which picks the type once.
ctypedef fused AppCycle:
    RequestCycle
    H2Stream


cdef drive(AppCycle cycle, object app, object receive, object send):
    """Run the app for `cycle`; `receive` and `send` are the cycle class's functions (the
    bound methods are made here, directly, with no attribute lookup through the type)."""
    cdef object loop = cycle.loop
    cdef object context = PyContext_CopyCurrent()
    cdef object task = aio_Task_new(aio_Task)
    cdef PyObject* yielded = NULL
    cdef PySendResult res
    cdef object coro
    cycle.app_state = APP_RUNNING
    PyContext_Enter(context)
    try:
        try:
            coro = app(cycle.scope, PyMethod_New(receive, cycle), PyMethod_New(send, cycle))
        except BaseException as exc:
            cycle._app_failed(exc)
            return
        aio_enter_task(loop, task)
        try:
            res = PyIter_Send(coro, None, &yielded)
        except BaseException as exc:
            cycle._app_failed(exc)
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            return
        finally:
            aio_leave_task(loop, task)
    finally:
        PyContext_Exit(context)
    result = <object>yielded
    Py_DECREF(result)
    if res == PYGEN_RETURN:
        cycle._app_returned(result)
        return
    # The app is waiting on something: a Task drives the rest, in the same context.
    cycle.task = task
    if TASK_TAKES_CONTEXT:
        task.__init__(_continue(cycle, coro, result), loop=loop, context=context)
    else:
        # Python 3.10: Task() copies the current context, so make it the request's
        PyContext_Enter(context)
        try:
            task.__init__(_continue(cycle, coro, result), loop=loop)
        finally:
            PyContext_Exit(context)
    task.add_done_callback(_TaskEnd(cycle, coro))
    cycle.ctx.tasks.add(task)


@cython.final
cdef class _TaskEnd:
    """The done callback of a suspended app's Task. Normally _continue has already told the
    cycle how the app ended. A Task cancelled before its first step (abort(), or the server's
    shutdown, in the same loop iteration as the request) never runs _continue: then the app
    gets its CancelledError here, and the request ends as a cancelled app."""
    cdef object cycle
    cdef object coro

    def __cinit__(self, cycle, coro):
        self.cycle = cycle
        self.coro = coro

    def __call__(self, task):
        cdef object exc = aio_CancelledError()
        if _app_state(self.cycle) != APP_RUNNING:
            return
        try:
            self.coro.throw(exc)
        except BaseException as raised:
            exc = raised
        else:
            self.coro.close()       # it awaits again, with no Task to drive it: end it
        _app_ended(self.cycle, None, exc)


async def _continue(object cycle, object coro, object first):
    try:
        result = await _Resume(coro, first)
    except BaseException as exc:
        _app_ended(cycle, None, exc)
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
    else:
        _app_ended(cycle, result, None)


cdef AppState _app_state(object cycle):
    if type(cycle) is RequestCycle:
        return (<RequestCycle>cycle).app_state
    return (<H2Stream>cycle).app_state


cdef _app_ended(object cycle, object result, object exc):
    """A suspended app ended: tell its request (exc None: it returned `result`)."""
    if type(cycle) is RequestCycle:
        if exc is None:
            (<RequestCycle>cycle)._app_returned(result)
        else:
            (<RequestCycle>cycle)._app_failed(exc)
    elif exc is None:
        (<H2Stream>cycle)._app_returned(result)
    else:
        (<H2Stream>cycle)._app_failed(exc)


@cython.final
cdef class _Resume:
    """Hands a coroutine that suspended during its eager first step to the Task: yields what
    the coroutine yielded, and forwards what the Task sends or throws."""
    cdef object coro
    cdef object first

    def __cinit__(self, coro, first):
        self.coro = coro
        self.first = first

    def __await__(self):
        cdef object coro = self.coro
        cdef object value = self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


@cython.final
cdef class _Done:
    """An awaitable that is already complete, with the result None. Stateless, so one
    instance serves every send() that has nothing to wait for."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration     # Cython returns NULL without an exception: result None

    def send(self, value):
        raise StopIteration

    def throw(self, typ, val=None, tb=None):
        if val is None:
            raise typ
        raise val

    def close(self):
        pass


cdef _Done _DONE = _Done()


# --- receive() waiters: one future, or a list while several receive() calls wait at once ------
# An app may await receive() from more than one task (Starlette's is_disconnected() beside a
# listener, an app's own watcher task): each waiting call is woken by the next change, and a
# cancelled one is taken out, so none is left waiting on a future nobody completes.

cdef inline object waiter_add(object current, object waiter):
    if current is None:
        return waiter
    if type(current) is list:
        (<list>current).append(waiter)
        return current
    return [current, waiter]


cdef inline object waiter_remove(object current, object waiter):
    if current is waiter:
        return None
    if type(current) is list and waiter in <list>current:
        (<list>current).remove(waiter)
    return current


cdef inline int waiters_wake(object waiters) except -1:
    """Complete the waiting future(s) in `waiters` (a future, a list of them, or None)."""
    if waiters is None:
        return 0
    if type(waiters) is list:
        for waiter in <list>waiters:
            if not waiter.done():
                waiter.set_result(None)
    elif not waiters.done():
        waiters.set_result(None)
    return 0
