#include "cria-test.h"
static void t (void) {}
static void reg (void) { static const CriaTestCase c[] = { { "t", t }, { NULL } }; cria_test_add_suite ("metric", c); }
CRIA_TEST_MAIN (reg)
