/* keys.c: create and load the signing key file: "s2-ed25519-secret-key <base64>\n". */
#include "keys.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "s2-ed25519-secret-key "
#define B64 sodium_base64_VARIANT_ORIGINAL

char *keys_pub_b64(const unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
    char out[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, B64)];
    sodium_bin2base64(out, sizeof out, pk, crypto_sign_PUBLICKEYBYTES, B64);
    return xstrdup(out);
}

int keys_create(const char *path, char **pub, struct s2_error *err)
{
    if (sodium_init() < 0)
        return s2_fail(err, S2_EINTERNAL, "crypto", "libsodium failed to initialise");
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES, B64)];
    sodium_bin2base64(b64, sizeof b64, sk, sizeof sk, B64);
    sodium_memzero(sk, sizeof sk);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sodium_memzero(b64, sizeof b64);
        return s2_fail(err, S2_EIO, "io", "cannot create key file '%s': %s", path,
                       strerror(errno));
    }
    char *line = xasprintf(MAGIC "%s\n", b64);
    sodium_memzero(b64, sizeof b64);
    size_t n = strlen(line);
    int ok = write(fd, line, n) == (ssize_t)n && fsync(fd) == 0;
    sodium_memzero(line, n);
    free(line);
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return s2_fail(err, S2_EIO, "io", "cannot write key file '%s': %s", path,
                       strerror(errno));
    }
    *pub = keys_pub_b64(pk);
    return 0;
}

int keys_load(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES],
              unsigned char pk[crypto_sign_PUBLICKEYBYTES], struct s2_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return s2_fail(err, S2_EIO, "io", "cannot read key file '%s': %s", path,
                       strerror(errno));
    char line[256];
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t bin = 0;
    int rc = -1;
    if (got && !strncmp(line, MAGIC, strlen(MAGIC))) {
        char *b = line + strlen(MAGIC);
        b[strcspn(b, "\r\n")] = 0;
        rc = sodium_base642bin(sk, crypto_sign_SECRETKEYBYTES, b, strlen(b), NULL, &bin, NULL,
                               B64);
    }
    sodium_memzero(line, sizeof line);
    if (rc || bin != crypto_sign_SECRETKEYBYTES)
        return s2_fail(err, S2_EINVAL, "bad_key", "'%s' is not an s2 signing key file", path);
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    return 0;
}
