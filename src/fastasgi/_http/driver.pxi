# --- the app driver: every request's app runs in a real asyncio.Task, started eagerly ---------------
#
# The app's first step runs right inside data_received, in its own Task: an app that never
# waits on anything (most plaintext and JSON endpoints) finishes within that call, without a
# loop round-trip; one that suspends goes on in the same Task, as asyncio runs any Task. So
# from its first line the app sees asyncio exactly as asyncio gives it, as under uvicorn:
# current_task() is an initialised Task (repr, get_name, get_loop, add_done_callback, cancel
# and uncancel, asyncio.timeout, anyio's cancel scopes), cancellation is delivered at the next
# await by the Task's own step, and context variables are per request.
#
# How the Task starts eagerly:
# - Python 3.12+: asyncio.Task(..., eager_start=True), the standard library's eager start
#   (the one asyncio.eager_task_factory uses).
# - Python 3.10 and 3.11 have no eager start. A Task's constructor schedules its first step
#   with loop.call_soon(step, context=...); for the duration of the constructor the loop's
#   call_soon is shadowed by an instance attribute that keeps that step instead, and the step
#   is then called right away, in the Task's context. It is the Task's own C step (the one the
#   loop would have run a moment later), so the Task behaves as any Task does. The shadowing
#   is checked to work once per loop (_eager_dict); where it does not (a loop without an
#   instance dict), the Task starts the standard way, on the loop's next iteration.
#
# Invariants:
# - drive() runs from the protocol's callbacks, never from inside another Task (3.10/3.11:
#   a Task's step refuses to run inside another one).
# - The app is called in a copy of its connection's context (taken at connection_made), which
#   its Task then runs in, so context variables stay per request and never leak into the next
#   request, whatever context the protocol callback that starts it runs in; with
#   --reset-contextvars, in an empty context.
# - Exactly one of Exchange._app_returned / _app_failed runs per request: right after the
#   first step if the Task is already done, else from the Task's done callback.
# - SystemExit and KeyboardInterrupt from the app propagate, as asyncio does for a Task.


cdef bint EAGER_START = sys.version_info >= (3, 12)


@cython.final
cdef class _StepCatcher:
    """Its catch() stands in for loop.call_soon while a Task is constructed: keeps the Task's
    first step and its context instead of scheduling them (3.10/3.11, see the top). A bound
    method, not __call__: the Task calls it with the vectorcall protocol, no argument tuple."""
    cdef object step
    cdef object context

    def catch(self, callback, *args, context=None):
        self.step = callback
        self.context = context


cdef _StepCatcher STEP_CATCHER = _StepCatcher()
cdef object CATCH_STEP = STEP_CATCHER.catch
cdef str CALL_SOON = "call_soon"
# a Task's methods, looked up once (the Tasks here are always exactly asyncio.Task)
cdef object task_done = aio_Task.done
cdef object task_exception = aio_Task.exception
cdef object task_result = aio_Task.result


cdef object _start_task(ServerContext ctx, object coro, object context):
    """The app's Task, its first step already run (unless the loop cannot start it eagerly)."""
    cdef object task, step, step_context
    cdef dict loop_dict = ctx.loop_dict
    if loop_dict is None:       # 3.12+ (eager_start in the keywords), or no shadowing
        return _new_task(ctx, coro, context)
    loop_dict[CALL_SOON] = CATCH_STEP
    try:
        task = _new_task(ctx, coro, context)
    finally:
        del loop_dict[CALL_SOON]
    step = STEP_CATCHER.step
    step_context = STEP_CATCHER.context
    STEP_CATCHER.step = STEP_CATCHER.context = None
    if step is None:
        # the Task scheduled its step some other way: it starts on the loop's next
        # iteration, and so do the Tasks after it
        ctx.loop_dict = None
    elif step_context is None:
        step()
    else:
        step_context.run(step)
    return task


cdef inline object _new_task(ServerContext ctx, object coro, object context):
    """asyncio.Task(coro, loop=..., context=context[, eager_start=True]) with the keywords of
    ctx.task_kwargs, a dict made once per server: only its context changes per request."""
    cdef dict kwargs = ctx.task_kwargs
    if not TASK_TAKES_CONTEXT:
        # Python 3.10: Task() copies the current context, so make it the request's
        PyContext_Enter(context)
        try:
            return PyObject_Call(aio_Task, (coro,), kwargs)
        finally:
            PyContext_Exit(context)
    kwargs["context"] = context
    try:
        return PyObject_Call(aio_Task, (coro,), kwargs)
    finally:
        kwargs["context"] = None


cdef dict _task_kwargs(object loop):
    """The keywords every app Task is made with (_new_task)."""
    if EAGER_START:
        return {"loop": loop, "context": None, "eager_start": True}
    if TASK_TAKES_CONTEXT:
        return {"loop": loop, "context": None}
    return {"loop": loop}


cdef dict _eager_dict(object loop):
    """The instance dict of `loop` in which call_soon can be shadowed (3.10/3.11, see the
    top), or None: 3.12+, or a loop without one, or whose call_soon is a data descriptor
    (which an instance attribute would not shadow)."""
    if EAGER_START:
        return None
    try:
        loop_dict = object.__getattribute__(loop, "__dict__")
    except AttributeError:
        return None
    if type(loop_dict) is not dict or hasattr(type(getattr(type(loop), CALL_SOON, None)), "__set__"):
        return None
    return loop_dict


cdef drive(Exchange ex, object app, object base_context):
    """Run the app for `ex`: call it with the exchange's receive and send (bound methods made
    here, directly), and start its Task, in a copy of `base_context` (its connection's) or,
    with --reset-contextvars, in an empty context (uvicorn's meaning of the flag)."""
    cdef object context
    cdef object coro, task
    if ex.ctx.reset_contextvars:
        context = PyContext_New()
    else:
        context = PyContext_Copy(base_context)
    ex.app_state = APP_RUNNING
    PyContext_Enter(context)
    try:
        coro = app(ex.scope, PyMethod_New(exchange_receive, ex), PyMethod_New(exchange_send, ex))
    except BaseException as exc:
        ex._app_failed(exc)
        return
    finally:
        PyContext_Exit(context)
    try:
        task = _start_task(ex.ctx, coro, context)
    except (SystemExit, KeyboardInterrupt) as exc:
        ex._app_failed(exc)     # the Task holds it too, as asyncio's does
        raise
    if task_done(task):
        _task_ended(ex, task)
        return
    ex.task = task
    task.add_done_callback(_TaskEnd(ex))
    ex.ctx.tasks.add(task)


cdef _task_ended(Exchange ex, object task):
    """The app's Task is done: tell its exchange how the app ended."""
    cdef object exc
    if ex.app_state != APP_RUNNING:
        return
    try:
        exc = task_exception(task)
    except aio_CancelledError as cancelled:
        exc = cancelled
    if exc is None:
        ex._app_returned(task_result(task))
    else:
        ex._app_failed(exc)


@cython.final
cdef class _TaskEnd:
    """The done callback of an app's Task that suspended."""
    cdef Exchange ex

    def __cinit__(self, Exchange ex):
        self.ex = ex

    def __call__(self, task):
        _task_ended(self.ex, task)


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
