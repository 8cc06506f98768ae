/*
 * arkouda_k8s._pump: the tunnel's byte pump for one SPDY port-forward connection.
 *
 * Measured need (benchmarks/tunnel.py): with asyncio/uvloop, TLS runs through OpenSSL
 * memory BIOs, and every byte is copied into and out of them, with a zero-fill on each
 * BIO write. Together with the event loop's per-chunk Python work, that made the CPU
 * per GiB forwarded miss its target (0.58x kubectl's against 0.5x).
 *
 * Python sets up the connection: TCP, the TLS handshake (ssl.SSLSocket, the project's
 * SSLContext and hostname check), the HTTP upgrade and the SYN_STREAMs. Then Pump.run()
 * takes over the SSLSocket's own SSL object and the local client's socket, and moves
 * bytes in a loop with the GIL released until the connection ends:
 *   - remote reads: the socket BIO with read-ahead and a 256 KiB buffer (one read
 *     system call for many TLS records), decrypted into one buffer, SPDY DATA payloads
 *     written to the local socket with sendmsg straight from it;
 *   - remote writes: the local socket is read behind room for the 8-byte DATA frame
 *     head; TLS encrypts head and payload and hands the records to a BIO of ours that
 *     appends them to one queue, sent with large write() calls.
 * Control frames: PING (answers the server's, counts answers to ours), RST_STREAM
 * (the stream failed), the error stream's text (the stream failed with that text);
 * anything else is skipped.
 *
 * The SSL object is taken from CPython's _ssl._SSLSocket: this module links the same
 * libssl as the ssl module (checked by address in compatible()) and reads the pointer at
 * its place in the object, checked against the socket's file descriptor.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030A0000 || PY_VERSION_HEX >= 0x030E0000
#error "the _ssl._SSLSocket layout is only known for CPython 3.10 to 3.13"
#endif

/* The head of CPython's PySSLSocket (Modules/_ssl.c, 3.10 to 3.13). */
typedef struct {
    PyObject_HEAD
    PyObject *socket;
    SSL *ssl;
} SSLSocketHead;

/* Sizes: a chunk is still in the core's L2 cache (512 KiB here) when it is encrypted,
 * copied and sent; larger chunks save system calls (and the ACKs they cause) but lose
 * as much in cache misses. Measured on the benchmark's transfer (CPU s/GiB, median of 7
 * interleaved rounds): 128 KiB local reads with 64 KiB TLS reads 1.40 (user 0.64, sys
 * 0.76); 1 MiB with 256 KiB 1.46 (0.76, 0.66); 512 KiB with 256 KiB 1.42 (0.84, 0.62).
 * DATA frames of up to 1 MiB whatever the chunk: the API server's cost is per frame. */
#define LOCAL_READ (128 * 1024)       /* one local read, behind 8 bytes of head room */
#define FRAME_MAX (1024 * 1024)       /* the largest DATA frame we send */
#define QUEUE_HIGH (256 * 1024)       /* stop reading locally while this much is unsent */
#define INBOUND_CAP (256 * 1024)      /* decrypted bytes waiting to be parsed/delivered */
#define INBOUND_MIN_ROOM (32 * 1024)  /* read from TLS only with this much room left */
#define READ_AHEAD (64 * 1024)        /* the TLS socket read size */
#define MAX_SEGMENTS 1024             /* DATA payload slices waiting for the local socket */
#define ERROR_TEXT_CAP 4096
#define CONTROL_MAX 4096              /* control frames we read whole (PING, RST_STREAM) */

enum outcome { RUNNING, DONE, LOCAL_CLOSED, DROPPED, FAILED, STOPPED };
static const char *outcome_names[] = {"running", "done", "local_closed", "dropped", "failed", "stopped"};

typedef struct {
    PyObject_HEAD
    int wake_fd;
    int stop;       /* accessed with __atomic builtins: set by stop(), read by run() */
    int pings;      /* pings asked for by ping(), not yet sent */
    long pongs;     /* answers to our pings */
    int running;
} Pump;

/* ---- the state of one run -------------------------------------------------------- */

typedef struct {
    SSL *ssl;
    int rfd, lfd, wake_fd;
    uint32_t data_id, error_id;
    Pump *owner;
    /* ciphertext queue (our write BIO appends here) */
    unsigned char *queue;
    size_t queue_head, queue_len, queue_cap;
    int queue_failed;
    int remote_blocked; /* the last send found the socket full: wait for POLLOUT */
    /* local -> remote staging: 8 bytes of frame head, then the local read */
    unsigned char *stage;
    int local_eof;
    /* remote -> local: decrypted SPDY stream */
    unsigned char *in;
    size_t in_len, in_pos;
    size_t data_left, error_left, skip_left;
    int data_fin, error_fin;
    struct iovec segs[MAX_SEGMENTS];
    int nsegs, first_seg;
    int local_blocked; /* the last local send found the socket full: wait for POLLOUT */
    int fin_pending;   /* the data stream's FIN was parsed; apply once segments are out */
    int remote_eof;    /* FIN applied: the local socket's write side is shut */
    int remote_closed; /* the TLS connection ended */
    unsigned char error_text[ERROR_TEXT_CAP];
    size_t error_len;
    uint32_t next_ping;
    enum outcome outcome;
    char message[512];
} Conn;

static void set_outcome(Conn *c, enum outcome o, const char *message) {
    if (c->outcome != RUNNING)
        return;
    c->outcome = o;
    snprintf(c->message, sizeof c->message, "%s", message ? message : "");
}

/* ---- our write BIO: appends TLS records to the queue ----------------------------- */

static BIO_METHOD *queue_method;

static int queue_reserve(Conn *c, size_t more) {
    if (c->queue_head && c->queue_head + c->queue_len + more > c->queue_cap) {
        memmove(c->queue, c->queue + c->queue_head, c->queue_len);
        c->queue_head = 0;
    }
    if (c->queue_len + more > c->queue_cap) {
        size_t cap = c->queue_cap ? c->queue_cap : 256 * 1024;
        while (cap < c->queue_len + more)
            cap *= 2;
        unsigned char *grown = realloc(c->queue, cap);
        if (!grown)
            return 0;
        c->queue = grown;
        c->queue_cap = cap;
    }
    return 1;
}

static int queue_write(BIO *bio, const char *data, int len) {
    Conn *c = BIO_get_data(bio);
    if (len <= 0)
        return 0;
    if (!queue_reserve(c, (size_t)len)) {
        c->queue_failed = 1;
        return -1;
    }
    memcpy(c->queue + c->queue_head + c->queue_len, data, (size_t)len);
    c->queue_len += (size_t)len;
    return len;
}

static long queue_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    Conn *c = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_WPENDING:
        return c ? (long)c->queue_len : 0;
    default:
        return 0;
    }
}

static int queue_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

/* ---- remote writes ----------------------------------------------------------------- */

static int tls_write(Conn *c, const unsigned char *data, size_t len) {
    if (!len)
        return 1;
    while (len) {
        /* with SSL_MODE_ENABLE_PARTIAL_WRITE a call may take one record only */
        ERR_clear_error();
        int n = SSL_write(c->ssl, data, (int)len);
        if (n <= 0) {
            ERR_clear_error();
            set_outcome(c, DROPPED,
                        c->queue_failed ? "out of memory queueing TLS records"
                                        : "the port-forward connection can no longer be written");
            return 0;
        }
        data += n;
        len -= (size_t)n;
    }
    return 1;
}

static void put_head(unsigned char *h, uint32_t word0, unsigned flags, uint32_t length) {
    h[0] = (unsigned char)(word0 >> 24);
    h[1] = (unsigned char)(word0 >> 16);
    h[2] = (unsigned char)(word0 >> 8);
    h[3] = (unsigned char)word0;
    h[4] = (unsigned char)flags;
    h[5] = (unsigned char)(length >> 16);
    h[6] = (unsigned char)(length >> 8);
    h[7] = (unsigned char)length;
}

static uint32_t get_u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Send what the queue holds; 0 when the socket failed. */
static int flush_remote(Conn *c) {
    while (c->queue_len && !c->remote_blocked) {
        ssize_t n = send(c->rfd, c->queue + c->queue_head, c->queue_len, MSG_NOSIGNAL);
        if (n > 0) {
            c->queue_head += (size_t)n;
            c->queue_len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->remote_blocked = 1; /* no more tries until poll says it is writable */
            break;
        }
        set_outcome(c, DROPPED, "the port-forward stream was dropped by the API server");
        return 0;
    }
    if (!c->queue_len)
        c->queue_head = 0;
    return 1;
}

/* The len bytes at c->stage + 8 as one DATA frame. */
static void send_frame(Conn *c, size_t len) {
    put_head(c->stage, c->data_id, 0, (uint32_t)len);
    tls_write(c, c->stage, len + 8);
}

/* The end of our data stream (a DATA frame with FIN): the local client half-closed. */
static void send_fin(Conn *c) {
    unsigned char fin[8];
    put_head(fin, c->data_id, 0x01, 0);
    c->local_eof = 1;
    tls_write(c, fin, 8);
}

static void send_ping(Conn *c, uint32_t id) {
    unsigned char frame[12];
    put_head(frame, 0x80030006u, 0, 4);
    frame[8] = (unsigned char)(id >> 24);
    frame[9] = (unsigned char)(id >> 16);
    frame[10] = (unsigned char)(id >> 8);
    frame[11] = (unsigned char)id;
    tls_write(c, frame, sizeof frame);
}

/* One DATA frame of everything the local socket holds (FIONREAD, up to FRAME_MAX): the
 * API server's cost is per frame. It is read, encrypted and sent in LOCAL_READ chunks
 * that stay in cache, and is finished before anything else is written (frames cannot
 * interleave): the bytes are already queued in the socket, so the reads do not wait. */
static void read_local(Conn *c) {
    int avail = 0;
    if (ioctl(c->lfd, FIONREAD, &avail) < 0)
        avail = 0;
    size_t frame = avail > 0 ? (size_t)avail : LOCAL_READ;
    if (frame > FRAME_MAX)
        frame = FRAME_MAX;
    size_t first = frame < LOCAL_READ ? frame : LOCAL_READ;
    ssize_t n = read(c->lfd, c->stage + 8, first);
    if (n == 0) {
        send_fin(c);
        return;
    }
    if (n < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            set_outcome(c, LOCAL_CLOSED, "the local client closed its connection");
        return;
    }
    if ((size_t)n < first)
        frame = (size_t)n; /* less than FIONREAD said: the frame is what came */
    put_head(c->stage, c->data_id, 0, (uint32_t)frame);
    tls_write(c, c->stage, (size_t)n + 8);
    size_t left = frame - (size_t)n;
    while (left && c->outcome == RUNNING) {
        if (c->queue_len >= LOCAL_READ && !flush_remote(c))
            return;
        n = read(c->lfd, c->stage, left < LOCAL_READ ? left : LOCAL_READ);
        if (n > 0) {
            tls_write(c, c->stage, (size_t)n);
            left -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd one = {.fd = c->lfd, .events = POLLIN};
            if (poll(&one, 1, 5000) > 0)
                continue;
        }
        set_outcome(c, LOCAL_CLOSED, "the local client's connection failed during a frame");
    }
}

/* ---- remote reads: SPDY parsing ------------------------------------------------------ */

static int add_segment(Conn *c, unsigned char *p, size_t len) {
    if (c->nsegs && (unsigned char *)c->segs[c->nsegs - 1].iov_base + c->segs[c->nsegs - 1].iov_len == p) {
        c->segs[c->nsegs - 1].iov_len += len;
        return 1;
    }
    if (c->nsegs == MAX_SEGMENTS)
        return 0;
    c->segs[c->nsegs].iov_base = p;
    c->segs[c->nsegs].iov_len = len;
    c->nsegs++;
    return 1;
}

static void on_control(Conn *c, unsigned kind, const unsigned char *payload, size_t len) {
    if (kind == 6 && len >= 4) { /* PING */
        uint32_t id = get_u32(payload);
        if (id % 2) {
            __atomic_add_fetch(&c->owner->pongs, 1, __ATOMIC_RELAXED);
        } else {
            send_ping(c, id); /* the server's ping: answered with its own id */
        }
    } else if (kind == 3 && len >= 8) { /* RST_STREAM */
        uint32_t id = get_u32(payload) & 0x7FFFFFFFu, status = get_u32(payload + 4);
        if (id == c->data_id || id == c->error_id) {
            char text[96];
            snprintf(text, sizeof text, "the API server reset the stream (status %u)", status);
            set_outcome(c, FAILED, text);
        }
    }
}

/* Parse from in_pos; DATA payloads of the data stream become segments. */
static void parse(Conn *c) {
    while (c->in_pos < c->in_len && c->outcome == RUNNING) {
        size_t avail = c->in_len - c->in_pos;
        unsigned char *p = c->in + c->in_pos;
        if (c->data_left) {
            size_t n = avail < c->data_left ? avail : c->data_left;
            if (!add_segment(c, p, n))
                return;
            c->in_pos += n;
            c->data_left -= n;
            if (!c->data_left && c->data_fin)
                c->fin_pending = 1;
            continue;
        }
        if (c->error_left) {
            size_t n = avail < c->error_left ? avail : c->error_left;
            size_t room = ERROR_TEXT_CAP - 1 - c->error_len;
            size_t keep = n < room ? n : room;
            memcpy(c->error_text + c->error_len, p, keep);
            c->error_len += keep;
            c->in_pos += n;
            c->error_left -= n;
            if (!c->error_left && c->error_fin)
                c->error_fin = 2;
            continue;
        }
        if (c->skip_left) {
            size_t n = avail < c->skip_left ? avail : c->skip_left;
            c->in_pos += n;
            c->skip_left -= n;
            continue;
        }
        if (avail < 8)
            return;
        uint32_t word0 = get_u32(p);
        unsigned flags = p[4];
        size_t length = ((size_t)p[5] << 16) | ((size_t)p[6] << 8) | p[7];
        if (word0 & 0x80000000u) {
            unsigned version = (word0 >> 16) & 0x7FFF, kind = word0 & 0xFFFF;
            if (version != 3) {
                set_outcome(c, FAILED, "port-forward stream broke: not a SPDY/3 frame");
                return;
            }
            if ((kind == 6 || kind == 3) && length <= CONTROL_MAX) {
                if (avail < 8 + length)
                    return; /* wait for the whole frame */
                c->in_pos += 8 + length;
                on_control(c, kind, p + 8, length);
            } else {
                c->in_pos += 8;
                c->skip_left = length;
            }
            continue;
        }
        c->in_pos += 8;
        uint32_t stream = word0 & 0x7FFFFFFFu;
        int fin = flags & 0x01;
        if (stream == c->data_id) {
            c->data_left = length;
            c->data_fin = fin;
            if (!length && fin)
                c->fin_pending = 1;
        } else if (stream == c->error_id) {
            c->error_left = length;
            c->error_fin = fin;
            if (!length && fin)
                c->error_fin = 2;
        } else {
            c->skip_left = length;
        }
    }
}

static void error_stream_check(Conn *c) {
    if (c->error_fin == 2) {
        c->error_fin = 0;
        if (c->error_len) {
            c->error_text[c->error_len] = 0;
            set_outcome(c, FAILED, (const char *)c->error_text);
        }
    }
}

/* All parsed payload is out: apply a pending FIN, make room in the buffer. */
static void segments_drained(Conn *c) {
    c->nsegs = c->first_seg = 0;
    if (c->fin_pending && !c->remote_eof) {
        c->fin_pending = 0;
        if (c->error_len) {
            c->error_text[c->error_len] = 0;
            set_outcome(c, FAILED, (const char *)c->error_text);
            return;
        }
        c->remote_eof = 1;
        shutdown(c->lfd, SHUT_WR);
    }
    size_t rest = c->in_len - c->in_pos;
    if (rest && c->in_pos)
        memmove(c->in, c->in + c->in_pos, rest);
    c->in_len = rest;
    c->in_pos = 0;
}

static void write_local(Conn *c) {
    while (c->first_seg < c->nsegs && !c->local_blocked) {
        int count = c->nsegs - c->first_seg;
        if (count > IOV_MAX)
            count = IOV_MAX;
        struct msghdr msg = {0};
        msg.msg_iov = c->segs + c->first_seg;
        msg.msg_iovlen = (size_t)count;
        ssize_t n = sendmsg(c->lfd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->local_blocked = 1;
                return;
            }
            set_outcome(c, LOCAL_CLOSED, "the local client closed its connection");
            return;
        }
        size_t left = (size_t)n;
        while (left && c->first_seg < c->nsegs) {
            struct iovec *s = &c->segs[c->first_seg];
            if (left >= s->iov_len) {
                left -= s->iov_len;
                c->first_seg++;
            } else {
                s->iov_base = (unsigned char *)s->iov_base + left;
                s->iov_len -= left;
                left = 0;
            }
        }
    }
    if (c->first_seg < c->nsegs)
        return;
    segments_drained(c);
    parse(c); /* frames held back by a full segment list */
    error_stream_check(c);
    if (c->nsegs == 0) /* nothing waits for the local socket: apply FIN, compact */
        segments_drained(c);
}

static int inbound_room(Conn *c) {
    size_t room = INBOUND_CAP - c->in_len;
    return c->nsegs < MAX_SEGMENTS && (room >= INBOUND_MIN_ROOM || (room && !c->nsegs));
}

static void read_remote(Conn *c) {
    int got = 0;
    while (c->outcome == RUNNING && !c->remote_closed && inbound_room(c)) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(INBOUND_CAP - c->in_len));
        if (n > 0) {
            c->in_len += (size_t)n;
            got = 1;
            if (c->in_len == INBOUND_CAP || (!SSL_has_pending(c->ssl) && got))
                break;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            break;
        c->remote_closed = 1; /* close_notify, EOF or a TLS/socket error */
    }
    if (got) {
        parse(c);
        error_stream_check(c);
        if (c->nsegs == 0) /* nothing waits for the local socket: apply FIN, compact */
            segments_drained(c);
    }
}

static void send_pings(Conn *c) {
    int asked = __atomic_exchange_n(&c->owner->pings, 0, __ATOMIC_ACQ_REL);
    while (asked-- > 0 && c->outcome == RUNNING) {
        c->next_ping += 2;
        send_ping(c, c->next_ping - 1); /* clients ping with odd ids */
    }
}

static void pump_loop(Conn *c) {
    while (c->outcome == RUNNING) {
        if (__atomic_load_n(&c->owner->stop, __ATOMIC_ACQUIRE)) {
            set_outcome(c, STOPPED, "the tunnel was stopped");
            break;
        }
        send_pings(c);
        if (c->queue_len && !flush_remote(c))
            break;
        if (c->remote_closed && c->nsegs == 0) {
            if (c->remote_eof || c->fin_pending)
                set_outcome(c, DONE, "");
            else
                set_outcome(c, DROPPED, "the port-forward stream was dropped by the API server");
            break;
        }
        if (c->remote_eof && c->local_eof && !c->queue_len) {
            set_outcome(c, DONE, "");
            break;
        }
        int want_local_read = !c->local_eof && c->queue_len < QUEUE_HIGH;
        int want_local_write = c->first_seg < c->nsegs && c->local_blocked;
        int can_read_remote = !c->remote_closed && inbound_room(c);
        /* records already read ahead are not seen by poll */
        int tls_pending = can_read_remote && SSL_has_pending(c->ssl);
        struct pollfd fds[3];
        fds[0].fd = c->wake_fd;
        fds[0].events = POLLIN;
        fds[1].events = (short)((want_local_read ? POLLIN : 0) | (want_local_write ? POLLOUT : 0));
        int want_remote_write = c->queue_len && c->remote_blocked;
        fds[2].events = (short)((can_read_remote ? POLLIN : 0) | (want_remote_write ? POLLOUT : 0));
        /* no interest, no entry: a hung-up socket would otherwise wake poll at once */
        fds[1].fd = fds[1].events ? c->lfd : -1;
        fds[2].fd = fds[2].events ? c->rfd : -1;
        int ready = poll(fds, 3, tls_pending ? 0 : 1000);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            set_outcome(c, FAILED, "poll failed");
            break;
        }
        if (fds[0].revents & POLLIN) {
            uint64_t value;
            while (read(c->wake_fd, &value, sizeof value) > 0) {
            }
        }
        short lr = fds[1].revents, rr = fds[2].revents;
        if (want_remote_write && (rr & (POLLOUT | POLLERR | POLLHUP)))
            c->remote_blocked = 0; /* flushed at the top of the loop */
        if (want_local_write && (lr & (POLLOUT | POLLERR | POLLHUP))) {
            c->local_blocked = 0;
            write_local(c);
        }
        if (tls_pending || (can_read_remote && (rr & (POLLIN | POLLERR | POLLHUP))))
            read_remote(c);
        if (c->first_seg < c->nsegs && c->outcome == RUNNING)
            write_local(c); /* usually writable: no need to wait for poll */
        if (want_local_read && c->outcome == RUNNING && (lr & (POLLIN | POLLERR | POLLHUP)))
            read_local(c);
    }
    if (c->queue_len && c->outcome == DONE) {
        c->remote_blocked = 0;
        flush_remote(c);
    }
}

/* ---- the Python type ------------------------------------------------------------------ */

static SSL *ssl_of(PyObject *sslobj, int fd) {
    if (strcmp(Py_TYPE(sslobj)->tp_name, "_ssl._SSLSocket") != 0) {
        PyErr_SetString(PyExc_TypeError, "expected the _sslobj of an ssl.SSLSocket");
        return NULL;
    }
    SSL *ssl = ((SSLSocketHead *)sslobj)->ssl;
    if (!ssl || SSL_get_rfd(ssl) != fd || SSL_get_wfd(ssl) != fd || !SSL_is_init_finished(ssl)) {
        PyErr_SetString(PyExc_ValueError, "the SSL object does not belong to this socket");
        return NULL;
    }
    return ssl;
}

static PyObject *Pump_run(Pump *self, PyObject *args) {
    PyObject *sslobj;
    int rfd, lfd;
    unsigned int data_id, error_id;
    Py_buffer inbound, outbound;
    int local_eof;
    if (!PyArg_ParseTuple(args, "OiiIIy*y*p", &sslobj, &rfd, &lfd, &data_id, &error_id, &inbound,
                          &outbound, &local_eof))
        return NULL;
    PyObject *result = NULL;
    Conn *c = NULL;
    SSL *ssl = ssl_of(sslobj, rfd);
    if (!ssl)
        goto out;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "this pump is already running");
        goto out;
    }
    if (inbound.len > INBOUND_CAP / 2) {
        PyErr_SetString(PyExc_ValueError, "too many early bytes");
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (c) {
        c->in = malloc(INBOUND_CAP);
        c->stage = malloc(8 + LOCAL_READ);
    }
    BIO *queue = c ? BIO_new(queue_method) : NULL;
    if (!c || !c->in || !c->stage || !queue) {
        if (queue)
            BIO_free(queue);
        PyErr_NoMemory();
        goto out;
    }
    BIO_set_data(queue, c);
    c->ssl = ssl;
    c->rfd = rfd;
    c->lfd = lfd;
    c->wake_fd = self->wake_fd;
    c->data_id = data_id;
    c->error_id = error_id;
    c->owner = self;
    memcpy(c->in, inbound.buf, (size_t)inbound.len);
    c->in_len = (size_t)inbound.len;
    Py_INCREF(sslobj); /* the SSL object lives as long as its Python owner */
    self->running = 1;

    Py_BEGIN_ALLOW_THREADS
    /* our BIO for writes (the socket BIO keeps one reference for reads) */
    BIO *socket_bio = SSL_get_wbio(ssl);
    BIO_up_ref(socket_bio);
    SSL_set0_wbio(ssl, queue);
    /* read many records per system call */
    SSL_set_read_ahead(ssl, 1);
    SSL_set_default_read_buffer_len(ssl, READ_AHEAD);
    SSL_free_buffers(ssl); /* reallocated at the new size on the next read (if idle) */
    parse(c);
    error_stream_check(c);
    if (c->nsegs == 0) /* nothing waits for the local socket: apply FIN, compact */
        segments_drained(c);
    for (size_t done = 0; done < (size_t)outbound.len && c->outcome == RUNNING;) {
        size_t n = (size_t)outbound.len - done;
        n = n < LOCAL_READ ? n : LOCAL_READ;
        memcpy(c->stage + 8, (const char *)outbound.buf + done, n);
        send_frame(c, n);
        done += n;
    }
    if (local_eof && c->outcome == RUNNING)
        send_fin(c);
    if (c->first_seg < c->nsegs)
        write_local(c);
    pump_loop(c);
    SSL_set0_wbio(ssl, socket_bio); /* frees our BIO */
    ERR_clear_error();
    Py_END_ALLOW_THREADS

    self->running = 0;
    Py_DECREF(sslobj);
    /* the message may quote the API server (error stream): never fail on its bytes */
    PyObject *message = PyUnicode_DecodeUTF8(c->message, (Py_ssize_t)strlen(c->message), "replace");
    if (message)
        result = Py_BuildValue("sN", outcome_names[c->outcome], message);
out:
    if (c) {
        free(c->in);
        free(c->stage);
        free(c->queue);
        free(c);
    }
    PyBuffer_Release(&inbound);
    PyBuffer_Release(&outbound);
    return result;
}

static void wake(Pump *self) {
    uint64_t one = 1;
    ssize_t n = write(self->wake_fd, &one, sizeof one);
    (void)n;
}

static PyObject *Pump_stop(Pump *self, PyObject *unused) {
    (void)unused;
    __atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
    wake(self);
    Py_RETURN_NONE;
}

static PyObject *Pump_ping(Pump *self, PyObject *unused) {
    (void)unused;
    __atomic_add_fetch(&self->pings, 1, __ATOMIC_ACQ_REL);
    wake(self);
    Py_RETURN_NONE;
}

static PyObject *Pump_get_pongs(Pump *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(__atomic_load_n(&self->pongs, __ATOMIC_RELAXED));
}

static PyObject *Pump_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist))
        return NULL;
    Pump *self = (Pump *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return (PyObject *)self;
}

static void Pump_dealloc(Pump *self) {
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Pump_methods[] = {
    {"run", (PyCFunction)Pump_run, METH_VARARGS,
     "run(sslobj, remote_fd, local_fd, data_stream, error_stream, inbound, outbound, local_eof)"
     " -> (outcome, message)\n\nMove bytes until the connection ends; releases the GIL."},
    {"stop", (PyCFunction)Pump_stop, METH_NOARGS, "Ask run() to return (any thread)."},
    {"ping", (PyCFunction)Pump_ping, METH_NOARGS, "Send one SPDY PING (any thread)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pump_getset[] = {
    {"pongs", (getter)Pump_get_pongs, NULL, "Answers to our pings.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "arkouda_k8s._pump.Pump",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Moves one port-forward connection's bytes in native code.",
    .tp_new = Pump_new,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_methods = Pump_methods,
    .tp_getset = Pump_getset,
};

/* Is the libssl we call the one the ssl module uses? (Same functions, same address.) */
static PyObject *compatible(PyObject *module, PyObject *path) {
    (void)module;
    const char *file = PyUnicode_AsUTF8(path);
    if (!file)
        return NULL;
    void *handle = dlopen(file, RTLD_NOW | RTLD_NOLOAD);
    if (!handle)
        Py_RETURN_FALSE;
    void *theirs = dlsym(handle, "SSL_read");
    dlclose(handle);
    if (theirs == (void *)&SSL_read && OpenSSL_version_num() >= 0x30000000L)
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyMethodDef module_methods[] = {
    {"compatible", compatible, METH_O,
     "compatible(path_of_the_ssl_module) -> bool: both use one libssl."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "arkouda_k8s._pump", "The tunnel's native byte pump.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__pump(void) {
    queue_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "arkouda-k8s queue");
    if (!queue_method || !BIO_meth_set_write(queue_method, queue_write) ||
        !BIO_meth_set_ctrl(queue_method, queue_ctrl) ||
        !BIO_meth_set_create(queue_method, queue_create))
        return PyErr_NoMemory();
    if (PyType_Ready(&PumpType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(m, "Pump", (PyObject *)&PumpType) < 0) {
        Py_DECREF(&PumpType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
