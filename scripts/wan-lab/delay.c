/*
 * delay.c: a packet-level delay line for the WAN lab (issue 21).
 *
 * The lab's kernels have tbf/htb/pfifo but no netem, so latency comes from
 * this program. It runs in the router namespace, between two interfaces
 * (veth ends, one towards each side), and bridges Ethernet frames between
 * them through AF_PACKET sockets, holding every frame for a fixed one-way
 * delay before it is sent on. Both directions are delayed, so the round
 * trip grows by twice the delay. TCP sees the real round trip: nothing is
 * terminated or acknowledged here, windows and congestion control are the
 * endpoints' own.
 *
 * Frames are read with PACKET_VNET_HDR, so a TSO/GSO super-frame (up to
 * 64 KiB, as veth passes them) is carried whole with its segmentation and
 * checksum-offload metadata and sent on the same way: a few thousand
 * frames a second at 400 Mbit/s instead of 35,000, which a single core
 * keeps up with easily.
 *
 * Usage: delay IFACE_A IFACE_B ONE_WAY_MS [BUFFER_MIB]
 *   Frames from A go out on B after ONE_WAY_MS, and B's go out on A.
 *   BUFFER_MIB (default 64) is each direction's delay-line buffer; frames
 *   that find it full are dropped and counted. On SIGTERM/SIGINT it prints
 *   frame, byte and drop counts per direction and exits.
 *
 * Build: cc -O2 -pthread -o delay delay.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_VNET_HDR
#define PACKET_VNET_HDR 15
#endif
#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

/* virtio_net_hdr (10 bytes) + the largest GSO frame. */
#define MAX_FRAME (10 + 65536 + 64)

struct rec {
    uint64_t due_ns;
    uint32_t len;  /* 0: wrap marker */
    uint32_t pad;
};

struct line {
    const char *name;
    int in, out;
    uint64_t delay_ns;
    unsigned char *buf;
    size_t cap, head, tail, used;
    uint64_t frames, bytes, drops, send_errors;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int open_if(const char *name) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) {
        perror("socket(AF_PACKET)");
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
        perror("PACKET_VNET_HDR");
        exit(1);
    }
    /* Do not read back the frames we send on this interface. */
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    int rcv = 32 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcv, sizeof rcv);
    unsigned idx = if_nametoindex(name);
    if (!idx) {
        fprintf(stderr, "delay: no interface %s\n", name);
        exit(1);
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        perror("bind");
        exit(1);
    }
    /* Promiscuous: frames for the far side's MAC address reach us too. */
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = (int)idx;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
        perror("PACKET_MR_PROMISC");
        exit(1);
    }
    return fd;
}

/* Room for one record of MAX_FRAME at the tail (wrapping if needed). */
static unsigned char *reserve(struct line *l) {
    size_t need = sizeof(struct rec) + MAX_FRAME;
    if (l->used == 0) {
        l->head = l->tail = 0;
    }
    if (l->tail >= l->head) {
        if (l->cap - l->tail >= need) {
            return l->buf + l->tail;
        }
        /* Wrap: only if the start is free. */
        if (l->head > need || (l->used == 0)) {
            if (l->cap - l->tail >= sizeof(struct rec)) {
                struct rec *w = (struct rec *)(l->buf + l->tail);
                w->len = 0;
                w->due_ns = 0;
            }
            l->used += l->cap - l->tail;
            l->tail = 0;
            return l->buf;
        }
        return NULL;
    }
    if (l->head - l->tail > need) {
        return l->buf + l->tail;
    }
    return NULL;
}

static void commit(struct line *l, struct rec *r) {
    size_t size = (sizeof(struct rec) + r->len + 7) & ~(size_t)7;
    l->tail += size;
    l->used += size;
}

/* Send every frame that is due; the time until the next one is due. */
static int64_t send_due(struct line *l) {
    while (l->used > 0) {
        if (l->cap - l->head < sizeof(struct rec)) {
            l->used -= l->cap - l->head;
            l->head = 0;
            continue;
        }
        struct rec *r = (struct rec *)(l->buf + l->head);
        if (r->len == 0) { /* wrap marker */
            l->used -= l->cap - l->head;
            l->head = 0;
            continue;
        }
        uint64_t t = now_ns();
        if (r->due_ns > t) {
            return (int64_t)(r->due_ns - t);
        }
        ssize_t n = send(l->out, (unsigned char *)(r + 1), r->len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
                /* The egress queue is full: try again in a moment. */
                return 200000;
            }
            l->send_errors++;
        } else {
            l->frames++;
            l->bytes += (uint64_t)n;
        }
        size_t size = (sizeof(struct rec) + r->len + 7) & ~(size_t)7;
        l->head += size;
        l->used -= size;
        if (l->used == 0) {
            l->head = l->tail = 0;
        }
    }
    return -1;
}

static void *run(void *arg) {
    struct line *l = arg;
    unsigned char *scratch = malloc(MAX_FRAME);
    if (!scratch) {
        return NULL;
    }
    while (!stop) {
        int64_t wait = send_due(l);
        struct pollfd p = {.fd = l->in, .events = POLLIN};
        struct timespec ts;
        if (wait < 0 || wait > 100000000) {
            wait = 100000000; /* 100 ms: check `stop` now and then */
        }
        ts.tv_sec = wait / 1000000000;
        ts.tv_nsec = wait % 1000000000;
        int r = ppoll(&p, 1, &ts, NULL);
        if (r <= 0) {
            continue;
        }
        /* Take everything that is there now. */
        for (int i = 0; i < 256; i++) {
            unsigned char *slot = reserve(l);
            struct rec *rec = (struct rec *)slot;
            unsigned char *dst = slot ? (unsigned char *)(rec + 1) : scratch;
            ssize_t n = recv(l->in, dst, MAX_FRAME, MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            if (!slot) {
                l->drops++;
                continue;
            }
            rec->len = (uint32_t)n;
            rec->due_ns = now_ns() + l->delay_ns;
            commit(l, rec);
        }
    }
    free(scratch);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s IFACE_A IFACE_B ONE_WAY_MS [BUFFER_MIB]\n", argv[0]);
        return 2;
    }
    double ms = atof(argv[3]);
    size_t mib = argc > 4 ? (size_t)atol(argv[4]) : 64;
    if (ms < 0 || mib < 1) {
        fprintf(stderr, "delay: bad delay or buffer\n");
        return 2;
    }
    int a = open_if(argv[1]), b = open_if(argv[2]);
    struct line ab = {.name = "a->b", .in = a, .out = b}, ba = {.name = "b->a", .in = b, .out = a};
    struct line *ls[2] = {&ab, &ba};
    for (int i = 0; i < 2; i++) {
        ls[i]->delay_ns = (uint64_t)(ms * 1e6);
        ls[i]->cap = mib << 20;
        ls[i]->buf = malloc(ls[i]->cap);
        if (!ls[i]->buf) {
            fprintf(stderr, "delay: out of memory\n");
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, run, ls[i]);
    }
    fprintf(stderr, "delay: %s <-> %s, %.1f ms each way, %zu MiB per direction\n", argv[1],
            argv[2], ms, mib);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        printf("%s frames=%llu bytes=%llu drops=%llu send_errors=%llu\n", ls[i]->name,
               (unsigned long long)ls[i]->frames, (unsigned long long)ls[i]->bytes,
               (unsigned long long)ls[i]->drops, (unsigned long long)ls[i]->send_errors);
    }
    return 0;
}
