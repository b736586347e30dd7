/* libFuzzer target for the textual IR: whatever parses must print, re-parse and print the same
 * text again (round trip), and nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static char *print_graph(const lb_graph *g) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) abort();
  lb_graph_print(g, f, -1);
  fclose(f);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  lb_graph *g = NULL;
  lb_diag diag = {0};
  if (lb_graph_parse(text, "fuzz.lbir", &g, &diag) == 0) {
    char *first = print_graph(g);
    lb_graph *again = NULL;
    lb_diag_clear(&diag);
    if (lb_graph_parse(first, "printed.lbir", &again, &diag) != 0) {
      fprintf(stderr, "printed IR does not parse: %s\n", diag.msg);
      abort();
    }
    char *second = print_graph(again);
    if (strcmp(first, second) != 0) abort(); /* print(parse(print(g))) != print(g) */
    free(first);
    free(second);
    lb_graph_free(again);
    lb_graph_free(g);
  }
  free(text);
  return 0;
}
