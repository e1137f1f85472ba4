/* zaudio._wire: what its two files share (see _wire.c). */
#ifndef ZAUDIO_WIRE_H
#define ZAUDIO_WIRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

typedef struct {
    unsigned char _[64];
} __attribute__((aligned(sizeof(void *)))) zmq_msg_t;

#define ZMQ_DONTWAIT 1
#define ZMQ_SNDMORE 2
#define ZMQ_EVENTS 15
#define MAX_HEADER 65536

extern int (*z_msg_init)(zmq_msg_t *);
extern int (*z_msg_recv)(zmq_msg_t *, void *, int);
extern int (*z_msg_close)(zmq_msg_t *);
extern void *(*z_msg_data)(zmq_msg_t *);
extern size_t (*z_msg_size)(const zmq_msg_t *);
extern int (*z_msg_more)(const zmq_msg_t *);
extern int (*z_errno)(void);
extern int (*z_send)(void *, const void *, size_t, int);
extern int (*z_getsockopt)(void *, int, void *, size_t *);

extern PyObject *ZMQError;      /* zmq.ZMQError */
extern PyObject *decode_float;  /* msgspec.json.Decoder(float).decode */
extern PyObject *ndarray;       /* numpy.ndarray */
extern PyObject *float32;       /* numpy.dtype("<f4") */
extern PyObject *Info;          /* zaudio.tracking.Info */

extern PyObject *s_head, *s_suffix, *s_nbytes, *s_shape, *s_stream, *s_src, *s_seq,
    *s_index, *s_rate, *s_channels, *s_frames, *s_track;

/* One received frame: a read-only buffer over it, not copied (_wire.c). */
typedef struct {
    PyObject_HEAD
    zmq_msg_t msg;
} Part;

extern PyTypeObject PartType;
Part *new_part(void);
PyObject *part_bytes(Part *self, void *closure);
PyObject *zmq_error(int e);

/* _wire_recv.c */
PyObject *w_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
extern const char recv_doc[];

#endif
