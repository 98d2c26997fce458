/* strvec.h: a growable array of owned strings. */
#ifndef S2_STRVEC_H
#define S2_STRVEC_H

#include <stddef.h>

struct strvec {
    char **v;
    size_t n, cap;
};

#define STRVEC_INIT {NULL, 0, 0}

void strvec_push(struct strvec *sv, const char *s);
void strvec_push_nodup(struct strvec *sv, char *s);
void strvec_release(struct strvec *sv);
/* Index of s, or -1. */
long strvec_find(const struct strvec *sv, const char *s);
/* Join with sep into a fresh string (caller frees). */
char *strvec_join(const struct strvec *sv, const char *sep);
/* Split s on ch into sv (empty pieces are skipped). */
void strvec_split(struct strvec *sv, const char *s, char ch);
void strvec_sort(struct strvec *sv);
/* Deep copy of src appended to dst. */
void strvec_copy(struct strvec *dst, const struct strvec *src);

#endif
