# The CPython C-API functions the core uses that Cython's own cpython/*.pxd do not declare.




cdef extern from "Python.h":
    object PyContext_CopyCurrent()
    object PyContext_Copy(object ctx)
    object PyContext_New()
    object PyMethod_New(object func, object self)
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
