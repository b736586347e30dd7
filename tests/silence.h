/* A command entry point (lb_cmd_*) run with stdout and stderr sent to /dev/null, so a unit test
 * that drives the CLI keeps its log readable. The descriptors come back afterwards whatever the
 * command returned; the return value is the command's exit status. */
#ifndef LB_TESTS_SILENCE_H
#define LB_TESTS_SILENCE_H
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static inline int lb_test_silenced(int (*cmd)(int, char **), int argc, char **argv) {
  fflush(stdout);
  fflush(stderr);
  int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
  ck_assert(out >= 0 && err >= 0 && null >= 0);
  dup2(null, 1);
  dup2(null, 2);
  int rc = cmd(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(out, 1);
  dup2(err, 2);
  close(out), close(err), close(null);
  return rc;
}
#endif
