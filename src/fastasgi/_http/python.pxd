# The CPython C-API functions the core uses that Cython's own cpython/*.pxd do not declare.

from cpython.object cimport PyObject


cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject** presult) except? PYGEN_ERROR
    object PyContext_CopyCurrent()
    object PyContext_Copy(object ctx)
    object PyContext_New()
    object PyMethod_New(object func, object self)
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
