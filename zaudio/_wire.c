/* zaudio._wire: a data message's receive and send in C (optional; zaudio/wire.py).
 *
 * Why: a block arrives every 10 ms, after other processes ran, so every
 * instruction between the socket and the user's function is a cache miss; in
 * Python (pyzmq's Frame objects, their `more` and `bytes`, the header match,
 * numpy's argument parsing, Info) that path cost ~90 us of a block's latency
 * (docs/benchmarks.md). Here it is one call.
 *
 * It calls the libzmq that pyzmq loaded (found among the objects this process
 * has loaded, its functions looked up in that very copy), on pyzmq's own socket
 * handle (`Socket.underlying`), so nothing is linked at build time. It implements no
 * protocol rule of its own: a message is either exactly the block that
 * zaudio.expected.Expected predicted (the same byte checks as Expected.match,
 * `t` decoded by the msgspec decoder it is given) or handed back as frames for
 * the full path (zaudio.protocol.decode).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <math.h>
#include <string.h>

typedef struct {
    unsigned char _[64];
} __attribute__((aligned(sizeof(void *)))) zmq_msg_t;

#define ZMQ_DONTWAIT 1
#define ZMQ_SNDMORE 2
#define ZMQ_EVENTS 15
#define MAX_HEADER 65536

static int (*z_msg_init)(zmq_msg_t *);
static int (*z_msg_recv)(zmq_msg_t *, void *, int);
static int (*z_msg_close)(zmq_msg_t *);
static void *(*z_msg_data)(zmq_msg_t *);
static size_t (*z_msg_size)(const zmq_msg_t *);
static int (*z_msg_more)(const zmq_msg_t *);
static int (*z_errno)(void);
static int (*z_send)(void *, const void *, size_t, int);
static int (*z_getsockopt)(void *, int, void *, size_t *);

static PyObject *ZMQError;      /* zmq.ZMQError */
static PyObject *decode_float;  /* msgspec.json.Decoder(float).decode */
static PyObject *ndarray;       /* numpy.ndarray */
static PyObject *float32;       /* numpy.dtype("<f4") */
static PyObject *Info;          /* zaudio.tracking.Info */
static PyObject *one;           /* 1 */

static PyObject *s_head, *s_suffix, *s_nbytes, *s_shape, *s_stream, *s_src, *s_seq,
    *s_index, *s_rate, *s_channels, *s_frames, *s_track;

/* -- Part: one received frame, zero-copy, read-only buffer ---------------- */

typedef struct {
    PyObject_HEAD
    zmq_msg_t msg;
} Part;

static void Part_dealloc(Part *self) {
    z_msg_close(&self->msg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Part_getbuffer(Part *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, z_msg_data(&self->msg),
                             (Py_ssize_t)z_msg_size(&self->msg), 1, flags);
}

static Py_ssize_t Part_len(Part *self) { return (Py_ssize_t)z_msg_size(&self->msg); }

static PyObject *Part_bytes(Part *self, void *closure) {
    return PyBytes_FromStringAndSize(z_msg_data(&self->msg), (Py_ssize_t)z_msg_size(&self->msg));
}

static PyBufferProcs Part_as_buffer = {(getbufferproc)Part_getbuffer, NULL};
static PySequenceMethods Part_as_sequence = {.sq_length = (lenfunc)Part_len};
static PyGetSetDef Part_getset[] = {
    {"bytes", (getter)Part_bytes, NULL, "A copy of the frame as bytes.", NULL},
    {NULL},
};

static PyTypeObject PartType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zaudio._wire.Part",
    .tp_doc = "One received ZeroMQ frame: a read-only buffer, not copied.",
    .tp_basicsize = sizeof(Part),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Part_dealloc,
    .tp_as_buffer = &Part_as_buffer,
    .tp_as_sequence = &Part_as_sequence,
    .tp_getset = Part_getset,
};

static Part *new_part(void) {
    Part *p = PyObject_New(Part, &PartType);
    if (p != NULL) z_msg_init(&p->msg);
    return p;
}

static PyObject *zmq_error(int e) {
    PyObject *exc = PyObject_CallFunction(ZMQError, "i", e);
    if (exc != NULL) {
        PyErr_SetObject(ZMQError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* -- the predicted block ---------------------------------------------------- */

static PyObject *attr(PyObject *o, PyObject *name) { return PyObject_GetAttr(o, name); }

/* Non-finite samples (NaN, inf) among n float32s (counted per stream, zaudio.tracking). */
static long nonfinite(const void *data, size_t n) {
    const unsigned char *p = data;
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        float x;
        memcpy(&x, p + 4 * i, 4); /* a small frame's data may be unaligned */
        bad += !isfinite(x);
    }
    return bad;
}

static int get_ll(PyObject *o, PyObject *name, long long *out) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL) return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* Is (header, payload) the block `hit` (a zaudio.expected.Expected) predicts?
 * Then (hit, Info, array, non-finite samples), the prediction and the stream's
 * position moved past it; Py_None if not; NULL on an error. The checks are
 * Expected.match's: head, then `{seq},"index":{index},"t":`, a JSON number, the
 * suffix, the payload's size. */
static PyObject *match(PyObject *hit, PyObject *header, Part *payload) {
    PyObject *head = NULL, *suffix = NULL, *t = NULL, *raw_t = NULL;
    PyObject *block = NULL, *info = NULL, *result = NULL, *track = NULL;
    PyObject *v[9] = {NULL};
    long long seq, index, frames, nbytes;
    char mid[64];
    Py_ssize_t n = PyBytes_GET_SIZE(header), lh, lm, ls;
    const char *raw = PyBytes_AS_STRING(header);

    if ((head = attr(hit, s_head)) == NULL || (suffix = attr(hit, s_suffix)) == NULL ||
        get_ll(hit, s_seq, &seq) < 0 || get_ll(hit, s_index, &index) < 0 ||
        get_ll(hit, s_frames, &frames) < 0 || get_ll(hit, s_nbytes, &nbytes) < 0)
        goto done;
    if (!PyBytes_Check(head) || !PyBytes_Check(suffix)) goto nomatch;
    lh = PyBytes_GET_SIZE(head);
    ls = PyBytes_GET_SIZE(suffix);
    lm = snprintf(mid, sizeof(mid), "%lld,\"index\":%lld,\"t\":", seq, index);
    if (lm <= 0 || lm >= (Py_ssize_t)sizeof(mid)) goto nomatch;
    if (n > MAX_HEADER || n <= lh + lm + ls) goto nomatch;
    if (memcmp(raw, PyBytes_AS_STRING(head), lh) != 0 || memcmp(raw + lh, mid, lm) != 0 ||
        memcmp(raw + n - ls, PyBytes_AS_STRING(suffix), ls) != 0)
        goto nomatch;
    if ((long long)z_msg_size(&payload->msg) != nbytes) goto nomatch;
    if ((raw_t = PyBytes_FromStringAndSize(raw + lh + lm, n - lh - lm - ls)) == NULL) goto done;
    t = PyObject_CallOneArg(decode_float, raw_t);
    if (t == NULL) { /* not a JSON number: the full path says why */
        PyErr_Clear();
        goto nomatch;
    }
    {
        /* over a read-only memoryview: numpy takes its buffer as it is (an object
         * refusing numpy's first, writable request costs an exception per block) */
        PyObject *shape = attr(hit, s_shape);
        PyObject *view = shape ? PyMemoryView_FromObject((PyObject *)payload) : NULL;
        if (view != NULL) {
            PyObject *args[3] = {shape, float32, view};
            block = PyObject_Vectorcall(ndarray, args, 3, NULL);
        }
        Py_XDECREF(shape);
        Py_XDECREF(view);
        if (block == NULL) goto done;
    }
    if ((v[0] = PyLong_FromLong(1)) == NULL || (v[1] = attr(hit, s_stream)) == NULL ||
        (v[2] = attr(hit, s_src)) == NULL || (v[3] = PyLong_FromLongLong(seq)) == NULL ||
        (v[4] = PyLong_FromLongLong(index)) == NULL)
        goto done;
    v[5] = Py_NewRef(t);
    if ((v[6] = attr(hit, s_rate)) == NULL || (v[7] = attr(hit, s_channels)) == NULL ||
        (v[8] = PyLong_FromLongLong(frames)) == NULL)
        goto done;
    if ((info = PyObject_Vectorcall(Info, v, 9, NULL)) == NULL) goto done;
    /* the prediction and the stream's position move past the block (as in Expected.match) */
    if ((track = attr(hit, s_track)) == NULL) goto done;
    {
        PyObject *next_seq = PyLong_FromLongLong(seq + 1);
        PyObject *next_index = next_seq ? PyLong_FromLongLong(index + frames) : NULL;
        int bad = next_index == NULL || PyObject_SetAttr(hit, s_seq, next_seq) < 0 ||
                  PyObject_SetAttr(hit, s_index, next_index) < 0 ||
                  PyObject_SetAttr(track, s_seq, next_seq) < 0 ||
                  PyObject_SetAttr(track, s_index, next_index) < 0;
        Py_XDECREF(next_seq);
        Py_XDECREF(next_index);
        if (bad) goto done;
    }
    {
        long bad = nonfinite(z_msg_data(&payload->msg), (size_t)nbytes / 4);
        PyObject *count = PyLong_FromLong(bad);
        if (count == NULL) goto done;
        result = PyTuple_Pack(4, hit, info, block, count);
        Py_DECREF(count);
    }
    goto done;
nomatch:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(head);
    Py_XDECREF(suffix);
    Py_XDECREF(raw_t);
    Py_XDECREF(t);
    Py_XDECREF(block);
    Py_XDECREF(info);
    Py_XDECREF(track);
    for (int i = 0; i < 9; i++) Py_XDECREF(v[i]);
    return result;
}

/* -- recv ------------------------------------------------------------------------ */

PyDoc_STRVAR(recv_doc,
"recv(handle, flags, expected) -> None | (hit, info, block, bad) | (None, frames, None, None)\n\n"
"Receive one message on the socket at ``handle`` (``Socket.underlying``).\n"
"``flags`` 0 waits (up to the socket's RCVTIMEO; the GIL released), 1 does not.\n"
"None: nothing came. If the topic is in ``expected`` (topic -> Expected) and the\n"
"message is that block: (the Expected, its Info, the read-only array, its count\n"
"of NaN and infinite samples), the prediction and the stream's position moved past\n"
"it. Otherwise (None, frames, None, None): the topic and\n"
"every part but the last as bytes, the last as a zero-copy Part.");

static PyObject *w_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "recv(handle, flags, expected)");
        return NULL;
    }
    void *sock = PyLong_AsVoidPtr(args[0]);
    int flags = (int)PyLong_AsLong(args[1]);
    PyObject *expected = args[2];
    if (PyErr_Occurred()) return NULL;
    if (expected != Py_None && !PyDict_Check(expected)) {
        PyErr_SetString(PyExc_TypeError, "expected must be a dict or None");
        return NULL;
    }
    zmq_msg_t first;
    int rc;
    z_msg_init(&first);
    for (;;) {
        if (flags & ZMQ_DONTWAIT) {
            rc = z_msg_recv(&first, sock, flags);
        } else {
            Py_BEGIN_ALLOW_THREADS
            rc = z_msg_recv(&first, sock, flags);
            Py_END_ALLOW_THREADS
        }
        if (rc >= 0) break;
        int e = z_errno();
        if (e == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                z_msg_close(&first);
                return NULL;
            }
            continue;
        }
        z_msg_close(&first);
        if (e == EAGAIN) Py_RETURN_NONE;
        return zmq_error(e);
    }
    PyObject *topic = PyBytes_FromStringAndSize(z_msg_data(&first), (Py_ssize_t)z_msg_size(&first));
    int more = z_msg_more(&first);
    z_msg_close(&first);
    if (topic == NULL) return NULL;
    PyObject *frames = PyList_New(1);
    if (frames == NULL) {
        Py_DECREF(topic);
        return NULL;
    }
    PyList_SET_ITEM(frames, 0, topic);
    /* the rest of the message is here already (ZeroMQ delivers messages whole) */
    while (more) {
        Part *part = new_part();
        if (part == NULL) goto fail;
        if (z_msg_recv(&part->msg, sock, ZMQ_DONTWAIT) < 0) {
            int e = z_errno();
            Py_DECREF(part);
            zmq_error(e);
            goto fail;
        }
        more = z_msg_more(&part->msg);
        PyObject *item = (PyObject *)part;
        if (more) {
            item = Part_bytes(part, NULL);
            Py_DECREF(part);
            if (item == NULL) goto fail;
        }
        rc = PyList_Append(frames, item);
        Py_DECREF(item);
        if (rc < 0) goto fail;
    }
    if (expected != Py_None && PyList_GET_SIZE(frames) == 3) {
        PyObject *hit = PyDict_GetItemWithError(expected, topic);
        if (hit != NULL) {
            PyObject *found = match(hit, PyList_GET_ITEM(frames, 1),
                                    (Part *)PyList_GET_ITEM(frames, 2));
            if (found != Py_None) {
                Py_DECREF(frames);
                return found;
            }
            Py_DECREF(found);
        } else if (PyErr_Occurred()) {
            goto fail;
        }
    }
    PyObject *out = PyTuple_Pack(4, Py_None, frames, Py_None, Py_None);
    Py_DECREF(frames);
    return out;
fail:
    Py_DECREF(frames);
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
    if ((one = PyLong_FromLong(1)) == NULL) return NULL;
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
