/* witness_tamper: the tamper campaign on a real export (made by the calling test from a
 * live server): every single-byte change, a deleted, inserted or swapped entry, every
 * truncation and a re-signing with another key must each fail verification, naming the
 * first bad entry where one is to blame; the untouched export must verify. TAP output.
 *   witness_tamper EXPORT PUBLIC_KEY_BASE64 */
#include "util/buf.h"
#include "util/xalloc.h"
#include "witness.h"
#include "witness_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_test, n_failed;
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", cond ? "ok" : "not ok", ++n_test);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        n_failed++;
}

/* 0 verified, else 1 with *first_bad set */
static int verify(const char *data, size_t len, uint64_t *first_bad, char **msg)
{
    FILE *f = fmemopen((void *)data, len, "r");
    struct s2_error err = S2_ERROR_INIT;
    struct witness_report rep;
    int rc = witness_verify_export(f, pk, &rep, &err);
    fclose(f);
    *first_bad = rep.first_bad;
    if (msg)
        *msg = err.msg ? xstrdup(err.msg) : NULL;
    s2_error_release(&err);
    return rc ? 1 : 0;
}

struct line {
    size_t off, len; /* len includes the newline */
    int kind;        /* 'h' header, 'e' entry, 'c' checkpoint, 'z' end */
    uint64_t seq;
};

int main(int argc, char **argv)
{
    if (argc != 3 || sodium_init() < 0 || witness_parse_key(argv[2], pk)) {
        fprintf(stderr, "usage: witness_tamper EXPORT PUBLIC_KEY\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    struct buf exp = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&exp, chunk, n);
    fclose(f);
    const char *d = exp.ptr;
    size_t len = exp.len;

    struct line lines[4096];
    size_t nl = 0;
    for (size_t i = 0; i < len && nl < 4096;) {
        const char *e = memchr(d + i, '\n', len - i);
        size_t l = e ? (size_t)(e - (d + i)) + 1 : len - i;
        struct line *L = &lines[nl++];
        L->off = i;
        L->len = l;
        L->kind = strstr(d + i, "\"type\":\"entry\"") == d + i + 1       ? 'e'
                  : strstr(d + i, "\"type\":\"checkpoint\"") == d + i + 1 ? 'c'
                  : strstr(d + i, "\"type\":\"header\"") == d + i + 1     ? 'h'
                                                                         : 'z';
        L->seq = L->kind == 'e' ? strtoull(d + i + strlen("{\"type\":\"entry\",\"seq\":"), NULL, 10)
                                : 0;
        i += l;
    }
    uint64_t bad;
    ok(verify(d, len, &bad, NULL) == 0, "the untouched export verifies (%zu bytes, %zu lines)",
       len, nl);

    /* every byte, changed two ways */
    char *copy = xmalloc(len);
    size_t undetected = 0, misnamed = 0;
    for (size_t li = 0; li < nl; li++) {
        for (size_t i = lines[li].off; i < lines[li].off + lines[li].len; i++) {
            static const unsigned char flips[] = {0x01, 0x20};
            for (size_t k = 0; k < sizeof flips; k++) {
                memcpy(copy, d, len);
                copy[i] = (char)(copy[i] ^ flips[k]);
                if (copy[i] == d[i])
                    continue;
                if (!verify(copy, len, &bad, NULL)) {
                    if (undetected++ < 5)
                        printf("# undetected: byte %zu ('%c' -> '%c') in line %zu\n", i, d[i],
                               copy[i], li + 1);
                } else if (lines[li].kind == 'e' && bad != lines[li].seq) {
                    if (misnamed++ < 5)
                        printf("# byte %zu of entry %llu: first bad named %llu\n", i,
                               (unsigned long long)lines[li].seq, (unsigned long long)bad);
                }
            }
        }
    }
    ok(undetected == 0, "every single-byte change is detected (%zu undetected)", undetected);
    ok(misnamed == 0, "a change inside an entry names that entry first (%zu misnamed)", misnamed);

    /* delete, insert, swap entries */
    size_t del_bad = 0, ins_bad = 0, swap_bad = 0, entries = 0;
    for (size_t li = 0; li < nl; li++) {
        if (lines[li].kind != 'e')
            continue;
        entries++;
        const struct line *L = &lines[li];
        struct buf b = BUF_INIT;
        buf_add(&b, d, L->off);
        buf_add(&b, d + L->off + L->len, len - L->off - L->len);
        if (!verify(b.ptr, b.len, &bad, NULL) || bad != L->seq)
            del_bad++;
        buf_reset(&b);
        buf_add(&b, d, L->off + L->len);
        buf_add(&b, d + L->off, L->len);
        buf_add(&b, d + L->off + L->len, len - L->off - L->len);
        if (!verify(b.ptr, b.len, &bad, NULL) || bad != L->seq + 1)
            ins_bad++;
        if (li + 1 < nl && lines[li + 1].kind == 'e') {
            const struct line *M = &lines[li + 1];
            buf_reset(&b);
            buf_add(&b, d, L->off);
            buf_add(&b, d + M->off, M->len);
            buf_add(&b, d + L->off, L->len);
            buf_add(&b, d + M->off + M->len, len - M->off - M->len);
            if (!verify(b.ptr, b.len, &bad, NULL) || bad != L->seq)
                swap_bad++;
        }
        buf_release(&b);
    }
    ok(entries > 10, "the export holds entries to tamper with (%zu)", entries);
    ok(del_bad == 0, "deleting any entry is detected and named (%zu missed)", del_bad);
    ok(ins_bad == 0, "inserting a copy of any entry is detected and named (%zu missed)", ins_bad);
    ok(swap_bad == 0, "swapping any two neighbouring entries is detected and named (%zu missed)",
       swap_bad);

    /* every truncation: at each line boundary and in the middle of each line */
    size_t trunc_missed = 0;
    for (size_t li = 0; li < nl; li++) {
        if (verify(d, lines[li].off, &bad, NULL) == 0 && lines[li].off > 0)
            trunc_missed++;
        if (verify(d, lines[li].off + lines[li].len / 2, &bad, NULL) == 0)
            trunc_missed++;
    }
    ok(trunc_missed == 0, "every truncation of the tail is detected (%zu missed)", trunc_missed);

    /* re-sign every checkpoint with another key: first keeping the header, then naming the
     * forger's key in the header too */
    uint8_t opk[crypto_sign_PUBLICKEYBYTES], osk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(opk, osk);
    struct buf re = BUF_INIT;
    for (size_t li = 0; li < nl; li++) {
        struct witness_parsed p;
        struct s2_error err = S2_ERROR_INIT;
        if (lines[li].kind == 'c' &&
            !witness_parse_line(d + lines[li].off, lines[li].len - 1, &p, &err)) {
            checkpoint_sign(&p.checkpoint, osk);
            witness_export_checkpoint(&re, &p.checkpoint);
            witness_parsed_release(&p);
        } else {
            buf_add(&re, d + lines[li].off, lines[li].len);
        }
        s2_error_release(&err);
    }
    char *smsg = NULL;
    int sr = verify(re.ptr, re.len, &bad, &smsg);
    ok(sr == 1 && smsg && strstr(smsg, "signature"),
       "checkpoints re-signed with another key: the signature check fails (%s)",
       smsg ? smsg : "");
    free(smsg);
    buf_reset(&re);
    for (size_t li = 0; li < nl; li++) {
        struct witness_parsed p;
        struct s2_error err = S2_ERROR_INIT;
        if (witness_parse_line(d + lines[li].off, lines[li].len - 1, &p, &err)) {
            ok(0, "export line %zu parses: %s", li + 1, err.msg);
            s2_error_release(&err);
            continue;
        }
        if (p.kind == WL_CHECKPOINT) {
            checkpoint_sign(&p.checkpoint, osk);
            witness_export_checkpoint(&re, &p.checkpoint);
        } else if (p.kind == WL_HEADER) {
            char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                               sodium_base64_VARIANT_ORIGINAL)];
            sodium_bin2base64(b64, sizeof b64, opk, sizeof opk, sodium_base64_VARIANT_ORIGINAL);
            witness_export_header(&re, b64);
        } else {
            buf_add(&re, d + lines[li].off, lines[li].len);
        }
        witness_parsed_release(&p);
    }
    char *msg = NULL;
    int r = verify(re.ptr, re.len, &bad, &msg);
    ok(r == 1 && msg, "checkpoints re-signed with another key fail against the true key (%s)",
       msg ? msg : "");
    free(msg);
    /* and the re-signed log is self-consistent under the other key: only the key tells */
    FILE *g = fmemopen(re.ptr, re.len, "r");
    struct s2_error err = S2_ERROR_INIT;
    struct witness_report rep;
    ok(witness_verify_export(g, opk, &rep, &err) == 0,
       "the re-signed export verifies only under the forger's key");
    s2_error_release(&err);
    fclose(g);

    buf_release(&re);
    free(copy);
    buf_release(&exp);
    printf("1..%d\n", n_test);
    return n_failed ? 1 : 0;
}
