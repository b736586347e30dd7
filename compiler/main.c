/* lowbit driver: dispatches to one subcommand (cli.h) and maps library statuses to exit codes
 * (0 ok, 1 internal error, 2 bad input or usage). Subcommands print their own errors. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "quant.h"
#include "search.h" /* lb_cmd_search */

static int cmd_version(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: lowbit version\n\nPrints the version of lowbit.\n");
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "lowbit version: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  printf("lowbit 0.1.0\n");
  return 0;
}

static const struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} commands[] = {
    /* name      function         one-line summary */
    {"info",    lb_cmd_info,     "inputs, outputs, layers, parameters and MACs of a model"},
    {"run",     lb_cmd_run,      "run a model on .npy/.bin tensors (interpreter or JIT)"},
    {"compile", lb_cmd_compile,  "compile a model to an object file + C header for a target"},
    {"bench",   lb_cmd_bench,    "time a model JIT-compiled for this machine"},
    {"spec", lb_cmd_spec, "check, show or list target specs"},
    {"quantize", lb_cmd_quantize, "calibrate for a spec's int8 and write a QDQ ONNX model"},
    {"search",  lb_cmd_search,   "search a precision per layer against the spec's cost model"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: lowbit COMMAND [ARGS]   (lowbit COMMAND --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "lowbit: unknown command '%s' (try 'lowbit --help')\n", argv[1]);
  return 2;
}
