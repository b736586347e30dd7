/* The lowbit driver's subcommands. Each returns a process exit status (0 ok, 1 internal
 * error, 2 bad input or usage) and prints its own errors as one line on stderr. */
#ifndef LB_CLI_H
#define LB_CLI_H

#include "ir.h"

int lb_cmd_info(int argc, char **argv);
int lb_cmd_run(int argc, char **argv);
int lb_cmd_compile(int argc, char **argv);
int lb_cmd_bench(int argc, char **argv);
int lb_cmd_spec(int argc, char **argv);
/* `lowbit spec calibrate ...` (cmd_spec_calibrate.c); argv starts after "calibrate". */
int lb_cmd_spec_calibrate(int argc, char **argv);

/* Which .npy goes to which graph input (cmd_quant.c), from the values of an option that takes
 * them as --calib does (repeatable; each a comma list of FILE in graph input order, or of
 * NAME=FILE): path[k] for input k (g->n_inputs entries), pointing into text (cap bytes).
 * One-line errors start with opt ("--calib", "--eval"). */
int lb_cli_input_files(const char *opt, const char *const *values, int n_values,
                       const lb_graph *g, char *text, size_t cap, const char **path, lb_diag *d);

/* Maps a library status to an exit status. */
static inline int lb_exit_code(int status) {
  return status == 0 ? 0 : status == LB_ERR_INPUT ? 2 : 1;
}

#endif
