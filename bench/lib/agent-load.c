/*
 * Agent-check load generator for bench/agent.ts. It stands in for HAProxy's checker (C, epoll), so
 * the client costs little CPU next to the agent on a small machine. Each check: connect, send
 * "NAME\n", read the reply to the close.
 *   RATE > 0: open loop, RATE checks per second on schedule, at most CONNECTIONS at once; latency
 *             is from the scheduled start (a late start counts against the agent).
 *   RATE = 0: closed loop, CONNECTIONS checks always in flight (saturation).
 * Prints one JSON line: replies, errors, replies/s, p50/p99/max latency in ms.
 *   cc -O2 -o agent-load agent-load.c && ./agent-load 127.0.0.1 5555 200 10 20000 web/w1 web/w2
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn { int fd; double t0; int got; int sent; const char *name; };

static double now_ms(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return (x > y) - (x < y); }

static struct sockaddr_in addr;
static int ep;

static void start(struct conn *c, const char *name) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  c->t0 = now_ms(); c->got = 0; c->sent = 0; c->name = name;
  connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
  struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c };
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

int main(int argc, char **argv) {
  if (argc < 7) { fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SECONDS RATE NAME...\n", argv[0]); return 2; }
  addr.sin_family = AF_INET; addr.sin_port = htons(atoi(argv[2])); inet_pton(AF_INET, argv[1], &addr.sin_addr);
  int n = atoi(argv[3]); double seconds = atof(argv[4]); double rate = atof(argv[5]); char **names = argv + 6; int nnames = argc - 6;
  size_t cap = 64 * 1024 * 1024, count = 0; long errors = 0, k = 0;
  float *lat = malloc(cap * sizeof(float));
  struct conn *conns = calloc(n, sizeof(struct conn));
  ep = epoll_create1(0);
  double t_start = now_ms(), end = t_start + seconds * 1e3;
  struct conn **free_slots = malloc(n * sizeof(struct conn *)); int nfree = 0;
  for (int i = 0; i < n; i++) free_slots[nfree++] = &conns[i];
  double next = t_start; /* open loop: when the next check is due */
  struct epoll_event evs[512];
  long started = 0;
  for (;;) {
    double t = now_ms();
    if (t >= end && nfree == n) break;
    /* start what is due (open loop) or fill every free slot (closed loop) */
    while (nfree > 0 && t < end && (rate <= 0 || next <= t)) {
      struct conn *c = free_slots[--nfree];
      start(c, names[k++ % nnames]);
      if (rate > 0) { c->t0 = next; next = t_start + (++started) / rate * 1e3; }
    }
    struct timespec to = { 0, 0 };
    if (rate > 0 && nfree > 0 && next > t) { double w = next - t; to.tv_sec = (time_t)(w / 1e3); to.tv_nsec = (long)((w - to.tv_sec * 1e3) * 1e6); }
    else if (nfree == n) { to.tv_nsec = 1000000; }
    else if (rate <= 0 || nfree == 0) { to.tv_nsec = 10000000; }
    int m = epoll_pwait2(ep, evs, 512, &to, NULL);
    for (int i = 0; i < m; i++) {
      struct conn *c = evs[i].data.ptr;
      if ((evs[i].events & EPOLLOUT) && !c->sent) {
        int err = 0; socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { errors++; goto done; }
        char buf[256]; int l = snprintf(buf, sizeof buf, "%s\n", c->name);
        if (write(c->fd, buf, l) != l) { errors++; goto done; }
        c->sent = 1;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        char buf[512]; ssize_t r;
        while ((r = read(c->fd, buf, sizeof buf)) > 0) c->got += r;
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          if (c->got > 0 && count < cap) lat[count++] = (float)(now_ms() - c->t0); else errors++;
          goto done;
        }
      }
      continue;
    done:
      close(c->fd);
      free_slots[nfree++] = c;
    }
  }
  qsort(lat, count, sizeof(float), cmp);
  double elapsed = seconds;
  printf("{\"replies\":%zu,\"errors\":%ld,\"perSecond\":%.0f,\"p50ms\":%.3f,\"p99ms\":%.3f,\"maxms\":%.3f}\n", count, errors, count / elapsed,
         count ? lat[count / 2] : 0.0, count ? lat[(size_t)(count * 0.99)] : 0.0, count ? lat[count - 1] : 0.0);
  return 0;
}
