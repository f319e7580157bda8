/*
 * core/extnew: `orchd ext new NAME --lang c|python|go|sh`, the scaffold of
 * a standalone extension directory: the extension (a small one that greets
 * someone, with validate, plan, apply and destroy), its manifest, a README,
 * a Makefile (build, test, install), a sample pipeline, and a test script
 * that runs `orchd ext test` on it.  As generated it passes that test.
 *
 * The SDK it needs is copied in (python: orchd_sdk/, go: sdk/, sh:
 * orchd.sh) from orchd's own copy: $ORCHD_SDK_DIR, else share/orchd/sdk of
 * the installation, else protocol/sdk of the source tree orchd was built
 * in; C extensions link the installed liborchd-protocol (pkg-config).
 *
 * Nothing here exits; errors are one line on err.
 */
#ifndef ORCHD_CORE_EXTNEW_H
#define ORCHD_CORE_EXTNEW_H

#include <stdio.h>

/* Scaffold extension `name` (PROTOCOL §2.1: [a-z][a-z0-9_-]*) in language
 * lang into dir (NULL: ./orchd-ext-NAME), which must not exist.  0, or -1
 * with the reason on err. */
int orchd_extnew(const char *name, const char *lang, const char *dir, FILE *out, FILE *err);

#endif
