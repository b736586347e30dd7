/* lowbit driver: parses the command line and maps library statuses to exit codes
 * (0 ok, 1 internal error, 2 bad input or usage). */
#include <stdio.h>
#include <string.h>

#include "ir.h"

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0) {
    printf("usage: lowbit COMMAND ...\n");
    return argc < 2 ? 2 : 0;
  }
  fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
  return 2;
}
