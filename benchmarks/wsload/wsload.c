/* wsload: a small WebSocket echo load generator for the fastasgi benchmark harness.
 *
 * Why C: the harness measures servers whose Python side handles tens of thousands of
 * messages a second on one core; a Python client on the other core would be the
 * bottleneck. This client is single-threaded epoll, so it is pinned to one core like wrk.
 *
 * What it does: opens --conns connections to ws://HOST:PORT/PATH (RFC 6455 opening
 * handshake, Sec-WebSocket-Accept checked), keeps --window text messages of --size bytes
 * in flight on each, and checks every echo: FIN set, text opcode, exact length, exact
 * payload, in order (each message carries its sequence number). Runs --warmup seconds,
 * then counts for --duration seconds and prints one JSON object on stdout:
 *   {"messages": N, "msgs_per_sec": R, "p50_us": ..., "p99_us": ..., "errors": E, ...}
 * A wrong echo, a close frame, a reset or a stall (no echo for --timeout s) is an error.
 * --binary 1 sends binary messages instead of text; --deflate 1 negotiates permessage-deflate
 * (RFC 7692, context takeover both ways), compresses every message and inflates every echo.
 * The exit status is 0 when the JSON was printed, 2 for bad arguments.
 *
 * Build: cc -O2 -o wsload wsload.c -lz   (the harness does this itself, see benchmarks/wsclient.py)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HIST_MAX_US 1000000 /* latency histogram: 1 us buckets up to 1 s, then one overflow */
#define MIN_SIZE 16         /* a message starts with its sequence number, 16 hex digits */

/* RFC 6455 1.3: the sample key and the accept value the server must derive from it. */
static const char WS_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char WS_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

typedef struct {
    int fd;
    int dead;
    uint64_t send_seq; /* number of the next message to send */
    uint64_t recv_seq; /* number of the next echo expected */
    double *sent_at;   /* ring of send times, window entries */
    unsigned char *in;
    size_t in_len, in_cap;
    unsigned char *out;
    size_t out_len, out_off, out_cap;
    int want_out; /* EPOLLOUT armed */
    z_stream zin, zout; /* --deflate: raw DEFLATE both ways (RFC 7692 7.2) */
    int z_reset_out;    /* the server answered client_no_context_takeover (RFC 7692 7.1.1.2) */
    unsigned char *z; /* inflated echo or deflated message */
    size_t z_cap;
} conn_t;

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_path = "/";
static int opt_conns = 8;
static int opt_window = 8;
static int opt_size = 32;
static double opt_warmup = 1.0;
static double opt_duration = 5.0;
static double opt_timeout = 5.0;
static int opt_binary = 0;
static int opt_deflate = 0;

static uint32_t hist[HIST_MAX_US + 1];
static uint64_t count_measured, count_warmup, errors, max_us;
static int measuring;
static char first_error[256];
static int epfd;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void error_at(conn_t *c, const char *what) {
    errors++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", what);
    if (c && !c->dead) {
        c->dead = 1;
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "wsload: out of memory\n");
        exit(1);
    }
    return q;
}

static void payload_for(uint64_t seq, unsigned char *dst) {
    char head[MIN_SIZE + 1];
    snprintf(head, sizeof head, "%016llx", (unsigned long long)seq);
    memcpy(dst, head, MIN_SIZE);
    memset(dst + MIN_SIZE, 'x', (size_t)opt_size - MIN_SIZE);
}

static void out_reserve(conn_t *c, size_t n) {
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) { /* compact first */
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (c->out_len + n > c->out_cap) c->out_cap = c->out_cap ? c->out_cap * 2 : 4096;
        c->out = xrealloc(c->out, c->out_cap);
    }
}

/* Queue one client frame (RFC 6455 5.2; client frames are always masked, 5.3). */
static void queue_frame(conn_t *c, unsigned opcode, const unsigned char *data, size_t len) {
    out_reserve(c, len + 14);
    unsigned char *p = c->out + c->out_len;
    size_t h = 0;
    p[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        p[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        p[h++] = 0x80 | 126;
        p[h++] = (unsigned char)(len >> 8);
        p[h++] = (unsigned char)len;
    } else {
        p[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) p[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(p + h, MASK, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) p[h + i] = data[i] ^ MASK[i & 3];
    c->out_len += h + len;
}

/* Run zlib over len bytes into c->z with a sync flush (RFC 7692 7.2.1); the output size. */
static size_t zrun(conn_t *c, z_stream *z, int inflating, const unsigned char *data, size_t len) {
    size_t out = 0;
    z->next_in = (unsigned char *)data;
    z->avail_in = (unsigned)len;
    for (;;) {
        if (c->z_cap - out < 65536) {
            c->z_cap = c->z_cap * 2 + 131072;
            c->z = xrealloc(c->z, c->z_cap);
        }
        z->next_out = c->z + out;
        z->avail_out = (unsigned)(c->z_cap - out);
        int rc = inflating ? inflate(z, Z_SYNC_FLUSH) : deflate(z, Z_SYNC_FLUSH);
        out = c->z_cap - z->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return (size_t)-1;
        if (z->avail_out != 0) return out;
    }
}

static void queue_message(conn_t *c, double t) {
    static unsigned char buf[1 << 20];
    unsigned opcode = opt_binary ? 0x2 : 0x1;
    payload_for(c->send_seq, buf);
    c->sent_at[c->send_seq % (uint64_t)opt_window] = t;
    c->send_seq++;
    if (opt_deflate) { /* RSV1: a compressed message, its sync-flush tail left off (7.2.1) */
        size_t n = zrun(c, &c->zout, 0, buf, (size_t)opt_size);
        queue_frame(c, 0x40 | opcode, c->z, n - 4);
        /* no context takeover: the next message may not refer to this one's window */
        if (c->z_reset_out) deflateReset(&c->zout);
    } else {
        queue_frame(c, opcode, buf, (size_t)opt_size);
    }
}

static void flush(conn_t *c) {
    while (!c->dead && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            error_at(c, "send failed (connection reset by the server?)");
            return;
        }
    }
    if (c->dead) return;
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    int want = c->out_len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

static void record(double latency_s) {
    double us = latency_s * 1e6;
    uint64_t u = us <= 0 ? 0 : (uint64_t)(us + 0.5);
    if (u > max_us) max_us = u;
    hist[u > HIST_MAX_US ? HIST_MAX_US : u]++;
}

/* Parse every complete server frame in c->in (RFC 6455 5.2). */
static void parse_frames(conn_t *c, double t, int keep_sending) {
    static unsigned char expect[1 << 20];
    size_t pos = 0;
    while (!c->dead) {
        size_t avail = c->in_len - pos;
        unsigned char *p = c->in + pos;
        if (avail < 2) break;
        if (p[1] & 0x80) {
            error_at(c, "server frame is masked (RFC 6455 5.1 forbids it)");
            return;
        }
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            h = 10;
        }
        if (len > (1u << 24)) {
            error_at(c, "server frame longer than 16 MiB");
            return;
        }
        if (avail < h + len) break;
        uint64_t wire_len = len;
        unsigned opcode = p[0] & 0x0f;
        int fin = (p[0] & 0x80) != 0;
        unsigned char *data = p + h;
        if (opcode == 0x1 || opcode == 0x2) {
            if (!fin) {
                error_at(c, "echo arrived fragmented (client does not reassemble)");
                return;
            }
            if (opcode != (opt_binary ? 0x2u : 0x1u)) {
                error_at(c, "echo came back with the other data opcode");
                return;
            }
            if (p[0] & 0x40) {
                if (!opt_deflate) {
                    error_at(c, "compressed echo without permessage-deflate");
                    return;
                }
                /* the tail the server left off goes back on (RFC 7692 7.2.2) */
                static unsigned char zbuf[(1 << 24) + 4];
                memcpy(zbuf, data, (size_t)len);
                memcpy(zbuf + len, "\x00\x00\xff\xff", 4);
                size_t n = zrun(c, &c->zin, 1, zbuf, (size_t)len + 4);
                if (n == (size_t)-1) {
                    error_at(c, "echo does not inflate");
                    return;
                }
                data = c->z;
                if (n != (size_t)opt_size) {
                    error_at(c, "echo has the wrong length");
                    return;
                }
                len = n;
            }
            if (len != (uint64_t)opt_size) {
                error_at(c, "echo has the wrong length");
                return;
            }
            if (c->recv_seq >= c->send_seq) {
                error_at(c, "echo for a message never sent");
                return;
            }
            payload_for(c->recv_seq, expect);
            if (memcmp(data, expect, (size_t)opt_size) != 0) {
                error_at(c, "echo payload differs from the message (or out of order)");
                return;
            }
            double sent = c->sent_at[c->recv_seq % (uint64_t)opt_window];
            c->recv_seq++;
            if (measuring) {
                count_measured++;
                record(t - sent);
            } else {
                count_warmup++;
            }
            if (keep_sending) queue_message(c, t);
        } else if (opcode == 0x9) { /* ping -> pong with the same payload (5.5.2, 5.5.3) */
            queue_frame(c, 0xA, data, (size_t)len);
        } else if (opcode == 0xA) {
            /* unsolicited pong: ignored (5.5.3) */
        } else if (opcode == 0x8) {
            error_at(c, "server sent a close frame");
            return;
        } else {
            error_at(c, "server sent an unknown opcode");
            return;
        }
        pos += h + (size_t)wire_len;
    }
    if (c->dead) return;
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

static void on_readable(conn_t *c, double t, int keep_sending) {
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < 65536) break; /* drained, most likely */
            continue;
        }
        if (n == 0) {
            error_at(c, "server closed the connection");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        error_at(c, "recv failed (connection reset by the server?)");
        return;
    }
    parse_frames(c, t, keep_sending);
    flush(c);
}

/* Blocking connect + opening handshake (RFC 6455 4.1), then the socket goes non-blocking. */
static int open_conn(conn_t *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port)};
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) {
        error_at(NULL, "host must be an IPv4 address");
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        error_at(NULL, "socket() failed");
        return -1;
    }
    struct timeval tv = {.tv_sec = (long)opt_timeout, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        error_at(NULL, "connect failed");
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt_path, opt_host, opt_port, WS_KEY,
                     opt_deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        error_at(NULL, "sending the handshake failed");
        return -1;
    }
    char head[8192];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got >= sizeof head - 1) {
            close(fd);
            error_at(NULL, "handshake response head too long");
            return -1;
        }
        ssize_t r = recv(fd, head + got, sizeof head - 1 - got, 0);
        if (r <= 0) {
            close(fd);
            error_at(NULL, "no handshake response (timeout or closed)");
            return -1;
        }
        got += (size_t)r;
        head[got] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        error_at(NULL, "handshake not answered with 101 Switching Protocols");
        return -1;
    }
    char lower[8192];
    for (size_t i = 0; i < head_len; i++) lower[i] = (char)tolower((unsigned char)head[i]);
    lower[head_len] = 0;
    char *acc = strstr(lower, "\r\nsec-websocket-accept:");
    if (!acc) {
        close(fd);
        error_at(NULL, "handshake response lacks Sec-WebSocket-Accept");
        return -1;
    }
    acc = head + (acc - lower) + strlen("\r\nsec-websocket-accept:");
    while (*acc == ' ' || *acc == '\t') acc++;
    if (strncmp(acc, WS_ACCEPT, strlen(WS_ACCEPT)) != 0) {
        close(fd);
        error_at(NULL, "wrong Sec-WebSocket-Accept");
        return -1;
    }
    if (opt_deflate) {
        char *ext = strstr(lower, "\r\nsec-websocket-extensions: permessage-deflate");
        if (!ext) {
            close(fd);
            error_at(NULL, "permessage-deflate not negotiated");
            return -1;
        }
        /* the response's parameters, up to the end of that header line: a server may ask the
         * client not to keep its compression context between messages (RFC 7692 7.1.1.2) */
        char *eol = strstr(ext + 2, "\r\n");
        char *ncx = strstr(ext, "client_no_context_takeover");
        c->z_reset_out = ncx != NULL && (eol == NULL || ncx < eol);
        /* the server's window may be up to 15 bits; ours is 15 too (no parameters offered) */
        if (inflateInit2(&c->zin, -15) != Z_OK ||
            deflateInit2(&c->zout, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            close(fd);
            error_at(NULL, "zlib init failed");
            return -1;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    c->in_cap = 131072;
    c->in = xrealloc(NULL, c->in_cap);
    c->in_len = got - head_len; /* frames that arrived with the head */
    memcpy(c->in, head + head_len, c->in_len);
    c->sent_at = xrealloc(NULL, sizeof(double) * (size_t)opt_window);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static uint64_t percentile(uint64_t total, double q) {
    if (!total) return 0;
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (uint64_t i = 0; i <= HIST_MAX_US; i++) {
        seen += hist[i];
        if (seen >= rank) return i == HIST_MAX_US ? max_us : i;
    }
    return max_us;
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsload --port N [--host 127.0.0.1] [--path /] [--conns 8] [--window 8]\n"
            "              [--size 32] [--warmup 1] [--duration 5] [--timeout 5]\n"
            "              [--binary 0|1] [--deflate 0|1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = atoi(v);
        else if (!strcmp(a, "--path")) opt_path = v;
        else if (!strcmp(a, "--conns")) opt_conns = atoi(v);
        else if (!strcmp(a, "--window")) opt_window = atoi(v);
        else if (!strcmp(a, "--size")) opt_size = atoi(v);
        else if (!strcmp(a, "--warmup")) opt_warmup = atof(v);
        else if (!strcmp(a, "--duration")) opt_duration = atof(v);
        else if (!strcmp(a, "--timeout")) opt_timeout = atof(v);
        else if (!strcmp(a, "--binary")) opt_binary = atoi(v);
        else if (!strcmp(a, "--deflate")) opt_deflate = atoi(v);
        else usage();
    }
    if (opt_port <= 0 || opt_port > 65535 || opt_conns < 1 || opt_window < 1 || opt_size < MIN_SIZE ||
        opt_size > (1 << 20) || opt_duration <= 0 || opt_warmup < 0 || opt_timeout <= 0)
        usage();

    epfd = epoll_create1(0);
    conn_t *conns = calloc((size_t)opt_conns, sizeof(conn_t));
    int open_count = 0;
    for (int i = 0; i < opt_conns; i++) {
        conns[i].fd = -1;
        if (open_conn(&conns[i]) == 0) open_count++;
        else conns[i].dead = 1;
    }

    double t0 = now_s();
    double measure_from = t0 + opt_warmup, stop_at = measure_from + opt_duration;
    double measured_start = 0, measured_end = 0, last_progress = t0;
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        if (c->dead) continue;
        for (int w = 0; w < opt_window; w++) queue_message(c, t0);
        parse_frames(c, t0, 1); /* frames that came with the handshake response */
        flush(c);
    }
    if (opt_warmup == 0) {
        measuring = 1;
        measured_start = t0;
    }

    struct epoll_event evs[256];
    while (open_count > 0) {
        double t = now_s();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            measured_start = t;
        }
        if (t >= stop_at) {
            measured_end = t;
            break;
        }
        int alive = 0;
        for (int i = 0; i < opt_conns; i++) alive += !conns[i].dead;
        if (!alive) break;
        if (t - last_progress > opt_timeout) {
            error_at(NULL, "stalled: no echo within the timeout");
            break;
        }
        int n = epoll_wait(epfd, evs, 256, 50);
        if (n < 0 && errno != EINTR) break;
        t = now_s();
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->dead) continue;
            uint64_t before = c->recv_seq;
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, t, 1);
            else if (evs[k].events & EPOLLOUT) flush(c);
            if (c->recv_seq != before) last_progress = t;
        }
    }
    if (!measured_end) measured_end = now_s();
    if (!measuring) measured_start = measured_end;

    for (int i = 0; i < opt_conns; i++) { /* polite close (RFC 6455 5.5.1), no waiting */
        conn_t *c = &conns[i];
        if (c->dead) continue;
        static const unsigned char code[2] = {0x03, 0xe8}; /* 1000 normal closure */
        c->out_off = c->out_len = 0;
        queue_frame(c, 0x8, code, 2);
        (void)!send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(c->fd);
    }

    double elapsed = measured_end - measured_start;
    int alive = 0;
    for (int i = 0; i < opt_conns; i++) alive += !conns[i].dead;
    char err_json[600];
    size_t j = 0;
    for (const char *s = first_error; *s && j < sizeof err_json - 2; s++) {
        if (*s == '"' || *s == '\\') err_json[j++] = '\\';
        err_json[j++] = *s;
    }
    err_json[j] = 0;
    printf("{\"connections\": %d, \"connections_alive\": %d, \"window\": %d, \"size\": %d, "
           "\"duration\": %.6f, \"messages\": %llu, \"warmup_messages\": %llu, "
           "\"msgs_per_sec\": %.2f, \"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, "
           "\"max_us\": %llu, \"errors\": %llu, \"first_error\": \"%s\"}\n",
           opt_conns, alive, opt_window, opt_size, elapsed, (unsigned long long)count_measured,
           (unsigned long long)count_warmup, elapsed > 0 ? (double)count_measured / elapsed : 0.0,
           (unsigned long long)percentile(count_measured, 0.50),
           (unsigned long long)percentile(count_measured, 0.90),
           (unsigned long long)percentile(count_measured, 0.99), (unsigned long long)max_us,
           (unsigned long long)errors, err_json);
    return 0;
}
