// A load generator for the intake's TLS benchmark (scripts/bench_intake_tls.py): N threads, each
// with one keep-alive connection (plain, or TLS with a client certificate), posting unique
// alerts for a number of seconds. Prints requests/s, p50 and p99 latency (ms) and the count of
// 200 answers. C with OpenSSL, so the client's own TLS costs little next to the server's.
// Build: cc -O2 -o tls_load tls_load.c -lssl -lcrypto -lpthread
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port, seconds;
static SSL_CTX *context;  // NULL: plain HTTP
static char *prefix, *suffix;  // the alert's JSON around its nine varying digits
static atomic_long counter;
static double deadline;

struct worker { double *latencies; long count, capacity, ok; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int io_write(SSL *ssl, int fd, const char *data, int length) {
    int done = 0;
    while (done < length) {
        int n = ssl ? SSL_write(ssl, data + done, length - done) : (int)write(fd, data + done, length - done);
        if (n <= 0) return -1;
        done += n;
    }
    return 0;
}

static int io_read(SSL *ssl, int fd, char *data, int length) {
    return ssl ? SSL_read(ssl, data, length) : (int)read(fd, data, length);
}

static void *work(void *argument) {
    struct worker *self = argument;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &address.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); return NULL; }
    SSL *ssl = NULL;
    if (context) {
        ssl = SSL_new(context);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) { ERR_print_errors_fp(stderr); return NULL; }
    }
    char request[16384], response[65536];
    while (now() < deadline) {
        long n = atomic_fetch_add(&counter, 1);
        char body[12000];
        int body_length = snprintf(body, sizeof body, "%s%09ld%s", prefix, n % 1000000000, suffix);
        int length = snprintf(request, sizeof request,
            "POST /falco HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
            host, body_length, body);
        double started = now();
        if (io_write(ssl, fd, request, length) != 0) break;
        int got = 0, head_end = -1, content_length = 0;
        while (1) {
            int r = io_read(ssl, fd, response + got, (int)sizeof response - 1 - got);
            if (r <= 0) { got = -1; break; }
            got += r;
            response[got] = 0;
            if (head_end < 0) {
                char *end = strstr(response, "\r\n\r\n");
                if (!end) continue;
                head_end = (int)(end - response) + 4;
                char *field = strcasestr(response, "content-length:");
                if (field && field < end) content_length = atoi(field + 15);
            }
            if (got >= head_end + content_length) break;
        }
        if (got < 0) break;
        if (self->count == self->capacity) {
            self->capacity = self->capacity ? self->capacity * 2 : 4096;
            self->latencies = realloc(self->latencies, self->capacity * sizeof(double));
        }
        self->latencies[self->count++] = (now() - started) * 1000;
        if (!strncmp(response, "HTTP/1.1 200", 12)) self->ok++;
    }
    if (ssl) { SSL_shutdown(ssl); SSL_free(ssl); }
    close(fd);
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: tls_load HOST PORT CONNECTIONS SECONDS PREFIX-FILE SUFFIX-FILE START [CA CERT KEY]\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int connections = atoi(argv[3]);
    seconds = atoi(argv[4]);
    char *texts[2];
    for (int i = 0; i < 2; i++) {
        FILE *file = fopen(argv[5 + i], "r");
        if (!file) { perror(argv[5 + i]); return 2; }
        texts[i] = calloc(1, 12000);
        size_t read = fread(texts[i], 1, 11999, file);
        texts[i][read] = 0;
        fclose(file);
    }
    prefix = texts[0];
    suffix = texts[1];
    atomic_store(&counter, atol(argv[7]));
    if (argc >= 11) {
        context = SSL_CTX_new(TLS_client_method());
        if (SSL_CTX_load_verify_locations(context, argv[8], NULL) != 1
            || SSL_CTX_use_certificate_file(context, argv[9], SSL_FILETYPE_PEM) != 1
            || SSL_CTX_use_PrivateKey_file(context, argv[10], SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 2;
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    }
    double started = now();
    deadline = started + seconds;
    pthread_t threads[1024];
    struct worker *workers = calloc(connections, sizeof *workers);
    for (int i = 0; i < connections; i++) pthread_create(&threads[i], NULL, work, &workers[i]);
    long total = 0, ok = 0;
    for (int i = 0; i < connections; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].count;
        ok += workers[i].ok;
    }
    double elapsed = now() - started;
    double *all = malloc((total ? total : 1) * sizeof(double));
    long at = 0;
    for (int i = 0; i < connections; i++) {
        memcpy(all + at, workers[i].latencies, workers[i].count * sizeof(double));
        at += workers[i].count;
    }
    qsort(all, total, sizeof(double), compare);
    printf("%.1f %.3f %.3f %ld %ld\n", total / elapsed, total ? all[total / 2] : 0, total ? all[(long)(total * 0.99)] : 0, ok, total);
    return 0;
}
