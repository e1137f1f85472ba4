/* zaudio._wire: the receive of a data message and the predicted-block match (see _wire.c). */
#include "_wire.h"

#include <errno.h>
#include <math.h>
#include <string.h>

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

const char recv_doc[] =
"recv(handle, flags, expected) -> None | (hit, info, block, bad) | (None, frames, None, None)\n\n"
"Receive one message on the socket at ``handle`` (``Socket.underlying``).\n"
"``flags`` 0 waits (up to the socket's RCVTIMEO; the GIL released), 1 does not.\n"
"None: nothing came. If the topic is in ``expected`` (topic -> Expected) and the\n"
"message is that block: (the Expected, its Info, the read-only array, its count\n"
"of NaN and infinite samples), the prediction and the stream's position moved past\n"
"it. Otherwise (None, frames, None, None): the topic and\n"
"every part but the last as bytes, the last as a zero-copy Part.";

PyObject *w_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
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
            item = part_bytes(part, NULL);
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

