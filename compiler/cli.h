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

/* Maps a library status to an exit status. */
static inline int lb_exit_code(int status) {
  return status == 0 ? 0 : status == LB_ERR_INPUT ? 2 : 1;
}

#endif
