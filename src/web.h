/* web.h: the dashboard's static files, compiled into the binary by tools/embed.c. */
#ifndef S2_WEB_H
#define S2_WEB_H

#include <stddef.h>

struct web_asset {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct web_asset web_assets[];
extern const unsigned web_assets_count;
/* src/wasm/: the WASI host that `s2 worker --wasm` builds each module with */
extern const struct web_asset wasm_assets[];
extern const unsigned wasm_assets_count;

#endif
