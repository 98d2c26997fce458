/* webhook_sink: a tiny HTTP receiver for escalation webhooks in tests. Listens on
 * 127.0.0.1 (port 0), writes the port to PORTFILE, and appends each request's body as one
 * line to OUTFILE; answers 200 (or 500 to the first FAIL_FIRST requests, to test retries).
 *   webhook_sink PORTFILE OUTFILE [FAIL_FIRST] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: webhook_sink PORTFILE OUTFILE [FAIL_FIRST]\n");
        return 2;
    }
    int fail_first = argc > 3 ? atoi(argv[3]) : 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16) ||
        getsockname(s, (struct sockaddr *)&a, &al)) {
        perror("webhook_sink");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *pf = fopen(tmp, "w");
    if (!pf || fprintf(pf, "%d\n", ntohs(a.sin_port)) < 0 || fclose(pf) || rename(tmp, argv[1])) {
        perror("webhook_sink: port file");
        return 1;
    }
    for (int n = 0;; n++) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        static char req[1 << 20];
        size_t len = 0;
        long want = -1;
        char *body = NULL;
        for (;;) {
            ssize_t k = read(c, req + len, sizeof req - 1 - len);
            if (k <= 0)
                break;
            len += (size_t)k;
            req[len] = 0;
            if (!body && (body = strstr(req, "\r\n\r\n"))) {
                body += 4;
                char *cl = strcasestr(req, "Content-Length:");
                want = cl ? atol(cl + 15) : 0;
            }
            if (body && (long)(len - (size_t)(body - req)) >= want)
                break;
        }
        int fail = n < fail_first;
        if (body && !fail) {
            FILE *o = fopen(argv[2], "a");
            if (o) {
                fwrite(body, 1, (size_t)want, o);
                fputc('\n', o);
                fclose(o);
            }
        }
        const char *resp = fail ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n"
                                : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (write(c, resp, strlen(resp)) < 0)
            perror("webhook_sink: write");
        close(c);
    }
}
