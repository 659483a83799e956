/* tests/quant/layouts_c99.c — compiles quant/layouts.h as strict C99 and exports what C sees, for layouts_test.cpp. */
#include <stddef.h>

#include "quant/layouts.h"

int qeval_test_c99_sizeof_q4(void) { return (int)sizeof(qeval_block_q4_32); }
int qeval_test_c99_sizeof_q8(void) { return (int)sizeof(qeval_block_q8_32); }
int qeval_test_c99_offsetof_q4_qs(void) { return (int)offsetof(qeval_block_q4_32, qs); }
int qeval_test_c99_offsetof_q8_qs(void) { return (int)offsetof(qeval_block_q8_32, qs); }

/* which: 0 = e2m1, 1 = bnb fp4, 2 = nf4 */
float qeval_test_c99_table(int which, int i) {
  if (which == 0) return qeval_fp4_e2m1_values[i & 15];
  if (which == 1) return qeval_fp4_bnb_values[i & 15];
  return qeval_nf4_values[i & 15];
}
