/* fuzz.h: the libFuzzer entry point every target defines. The same target
 * links either with libFuzzer (--enable-fuzzing, clang) or with replay.c,
 * which runs the committed corpus as a regression test under make check. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
