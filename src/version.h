/* version.h: the release s2 reports (s2 --version, /healthz). */
#ifndef S2_VERSION_H
#define S2_VERSION_H
#define S2_VERSION "0.1.0"
#endif
