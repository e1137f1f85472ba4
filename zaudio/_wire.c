/* zaudio._wire: a data message's receive and send in C (optional; zaudio/wire.py).
 *
 * Why: a block arrives every 10 ms, after other processes ran, so every
 * instruction between the socket and the user's function is a cache miss; in
 * Python (pyzmq's Frame objects, their `more` and `bytes`, the header match,
 * numpy's argument parsing, Info) that path cost ~90 us of a block's latency
 * (docs/benchmarks.md). Here it is one call. This file: the module, a
 * received frame (Part) and the send; _wire_recv.c: the receive and the match
 * of the predicted block; _wire.h: what they share.
 *
 * It calls the libzmq that pyzmq loaded (found among the objects this process
 * has loaded, its functions looked up in that very copy), on pyzmq's own socket
 * handle (`Socket.underlying`), so nothing is linked at build time. It implements no
 * protocol rule of its own: a message is either exactly the block that
 * zaudio.expected.Expected predicted (the same byte checks as Expected.match,
 * `t` decoded by the msgspec decoder it is given) or handed back as frames for
 * the full path (zaudio.protocol.decode).
 */
#define _GNU_SOURCE
#include "_wire.h"
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <string.h>

int (*z_msg_init)(zmq_msg_t *);
int (*z_msg_recv)(zmq_msg_t *, void *, int);
int (*z_msg_close)(zmq_msg_t *);
void *(*z_msg_data)(zmq_msg_t *);
size_t (*z_msg_size)(const zmq_msg_t *);
int (*z_msg_more)(const zmq_msg_t *);
int (*z_errno)(void);
int (*z_send)(void *, const void *, size_t, int);
int (*z_getsockopt)(void *, int, void *, size_t *);

PyObject *ZMQError;      /* zmq.ZMQError */
PyObject *decode_float;  /* msgspec.json.Decoder(float).decode */
PyObject *ndarray;       /* numpy.ndarray */
PyObject *float32;       /* numpy.dtype("<f4") */
PyObject *Info;          /* zaudio.tracking.Info */

PyObject *s_head, *s_suffix, *s_nbytes, *s_shape, *s_stream, *s_src, *s_seq,
    *s_index, *s_rate, *s_channels, *s_frames, *s_track;

/* -- Part: one received frame, zero-copy, read-only buffer ---------------- */

static void Part_dealloc(Part *self) {
    z_msg_close(&self->msg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Part_getbuffer(Part *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, z_msg_data(&self->msg),
                             (Py_ssize_t)z_msg_size(&self->msg), 1, flags);
}

static Py_ssize_t Part_len(Part *self) { return (Py_ssize_t)z_msg_size(&self->msg); }

PyObject *part_bytes(Part *self, void *closure) {
    return PyBytes_FromStringAndSize(z_msg_data(&self->msg), (Py_ssize_t)z_msg_size(&self->msg));
}

static PyBufferProcs Part_as_buffer = {(getbufferproc)Part_getbuffer, NULL};
static PySequenceMethods Part_as_sequence = {.sq_length = (lenfunc)Part_len};
static PyGetSetDef Part_getset[] = {
    {"bytes", (getter)part_bytes, NULL, "A copy of the frame as bytes.", NULL},
    {NULL},
};

PyTypeObject PartType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zaudio._wire.Part",
    .tp_doc = "One received ZeroMQ frame: a read-only buffer, not copied.",
    .tp_basicsize = sizeof(Part),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Part_dealloc,
    .tp_as_buffer = &Part_as_buffer,
    .tp_as_sequence = &Part_as_sequence,
    .tp_getset = Part_getset,
};

Part *new_part(void) {
    Part *p = PyObject_New(Part, &PartType);
    if (p != NULL) z_msg_init(&p->msg);
    return p;
}

PyObject *zmq_error(int e) {
    PyObject *exc = PyObject_CallFunction(ZMQError, "i", e);
    if (exc != NULL) {
        PyErr_SetObject(ZMQError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* -- send -------------------------------------------------------------------------- */

PyDoc_STRVAR(send_doc,
"send(handle, frames) -> int\n\n"
"Send one message (bytes-like parts, copied) on the socket at ``handle`` without\n"
"blocking. -1 if it could not be queued (the first part was refused: messages are\n"
"atomic); else the socket's ZMQ_EVENTS right after it (what the Outlet's look\n"
"needs: POLLIN means subscription changes wait to be read).");

static PyObject *w_send(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send(handle, frames: list)");
        return NULL;
    }
    void *sock = PyLong_AsVoidPtr(args[0]);
    if (PyErr_Occurred()) return NULL;
    PyObject *frames = args[1];
    Py_ssize_t n = PyList_GET_SIZE(frames), got = 0;
    if (n < 1 || n > 16) {
        PyErr_SetString(PyExc_ValueError, "send: 1 to 16 parts");
        return NULL;
    }
    /* every part's buffer first: a part that is not bytes-like sends nothing */
    Py_buffer views[16];
    PyObject *result = NULL;
    for (; got < n; got++)
        if (PyObject_GetBuffer(PyList_GET_ITEM(frames, got), &views[got], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        int rc, e = 0;
        do {
            rc = z_send(sock, views[i].buf, (size_t)views[i].len,
                        i + 1 < n ? ZMQ_DONTWAIT | ZMQ_SNDMORE : ZMQ_DONTWAIT);
            if (rc < 0) e = z_errno();
        } while (rc < 0 && e == EINTR);
        if (rc < 0) {
            /* only the first part can be refused: a message is queued whole or not at all */
            if (e == EAGAIN && i == 0) result = PyLong_FromLong(-1);
            else zmq_error(e);
            goto done;
        }
    }
    int events = 0;
    size_t len = sizeof(events);
    if (z_getsockopt(sock, ZMQ_EVENTS, &events, &len) < 0) zmq_error(z_errno());
    else result = PyLong_FromLong(events);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return result;
}

/* -- init ------------------------------------------------------------------------------ */

/* The path of the libzmq this process loaded (pyzmq's), found by its name. */
static int find_libzmq(struct dl_phdr_info *info, size_t size, void *data) {
    const char *name = info->dlpi_name, *base = name ? strrchr(name, '/') : NULL;
    if (base != NULL && strncmp(base + 1, "libzmq", 6) == 0) {
        *(const char **)data = name;
        return 1;
    }
    return 0;
}

PyDoc_STRVAR(libzmq_doc, "libzmq() -> str | None\n\nThe file of the libzmq this process has loaded.");

static PyObject *w_libzmq(PyObject *mod, PyObject *unused) {
    const char *path = NULL;
    dl_iterate_phdr(find_libzmq, &path);
    if (path == NULL) Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(path);
}

PyDoc_STRVAR(init_doc,
"init(ZMQError, decode_float, ndarray, float32, Info) -> str | None\n\n"
"Look up zmq_msg_init, zmq_msg_recv, ... in the libzmq pyzmq loaded (import zmq\n"
"first). Its path, or None if there is none or a function is missing: then\n"
"recv and send must not be called.");

static PyObject *w_init(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "init(ZMQError, decode_float, ndarray, float32, Info)");
        return NULL;
    }
    const char *path = NULL;
    dl_iterate_phdr(find_libzmq, &path);
    if (path == NULL) Py_RETURN_NONE;
    void *lib = dlopen(path, RTLD_NOLOAD | RTLD_LAZY); /* the copy loaded, never a new one */
    if (lib == NULL) Py_RETURN_NONE;
    static const char *names[9] = {"zmq_msg_init", "zmq_msg_recv", "zmq_msg_close",
                                   "zmq_msg_data", "zmq_msg_size", "zmq_msg_more",
                                   "zmq_errno",    "zmq_send",     "zmq_getsockopt"};
    void *f[9];
    for (int i = 0; i < 9; i++) {
        if ((f[i] = dlsym(lib, names[i])) == NULL) {
            dlclose(lib);
            Py_RETURN_NONE;
        }
    }
    *(void **)&z_msg_init = f[0];
    *(void **)&z_msg_recv = f[1];
    *(void **)&z_msg_close = f[2];
    *(void **)&z_msg_data = f[3];
    *(void **)&z_msg_size = f[4];
    *(void **)&z_msg_more = f[5];
    *(void **)&z_errno = f[6];
    *(void **)&z_send = f[7];
    *(void **)&z_getsockopt = f[8];
    PyObject **slots[5] = {&ZMQError, &decode_float, &ndarray, &float32, &Info};
    for (int i = 0; i < 5; i++) Py_XSETREF(*slots[i], Py_NewRef(args[i]));
    return PyUnicode_DecodeFSDefault(path); /* lib stays open: it is pyzmq's, loaded for good */
}

static PyMethodDef methods[] = {
    {"init", (PyCFunction)(void (*)(void))w_init, METH_FASTCALL, init_doc},
    {"libzmq", (PyCFunction)w_libzmq, METH_NOARGS, libzmq_doc},
    {"recv", (PyCFunction)(void (*)(void))w_recv, METH_FASTCALL, recv_doc},
    {"send", (PyCFunction)(void (*)(void))w_send, METH_FASTCALL, send_doc},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "zaudio._wire",
    "A data message's receive and send in C (see zaudio/wire.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__wire(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_head, "head"}, {&s_suffix, "suffix"},     {&s_nbytes, "nbytes"},
        {&s_shape, "shape"},   {&s_stream, "stream"},     {&s_src, "src"},
        {&s_seq, "seq"},       {&s_index, "index"},       {&s_rate, "rate"},
        {&s_channels, "channels"}, {&s_frames, "frames"}, {&s_track, "_track"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL) return NULL;
    if (PyType_Ready(&PartType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Part", (PyObject *)&PartType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
