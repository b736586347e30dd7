/* `lowbit spec`: check (validate files, exit 0/2), show (a spec with extends resolved, as
 * YAML), list (bundled specs, one line each) and calibrate (cmd_spec_calibrate.c). Errors
 * print the located message, then the source line with a caret; check warns (one located line,
 * exit status unchanged) about combinations lowbit accepts but does not implement. Nothing
 * here knows any target by name. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "spec.h"

static void usage(FILE *f) {
  fprintf(f, "usage: lowbit spec check SPEC...   validate spec files (exit 0 ok, 2 errors)\n"
             "       lowbit spec show SPEC       print SPEC with extends resolved, as YAML\n"
             "       lowbit spec list            bundled specs, one line each\n"
             "       lowbit spec calibrate SPEC -o OUT.yaml [--model M.onnx ...]\n"
             "                                   SPEC with conv/dense efficiencies measured here\n"
             "SPEC is a bundled name, a path to a .yaml file, or 'host' (this machine).\n"
             "How to write one: specs/README.md\n");
}

static int check(int argc, char **argv) {
  int status = 0;
  if (argc < 1) {
    fprintf(stderr, "lowbit spec check: no spec given\n");
    return 2;
  }
  for (int i = 0; i < argc; i++) {
    lb_spec *s;
    lb_diag d;
    lb_diag_clear(&d);
    int rc = lb_spec_load(argv[i], &s, &d);
    if (rc) {
      lb_spec_print_diag(stderr, &d);
      if (lb_exit_code(rc) > status) status = lb_exit_code(rc);
      continue;
    }
    printf("%s: ok (%s, %s)\n", argv[i], lb_spec_name(s), lb_spec_llvm_triple(s));
    lb_spec_free(s);
  }
  return status;
}

static int show(int argc, char **argv) {
  if (argc != 1) {
    fprintf(stderr, "lowbit spec show: give exactly one spec\n");
    return 2;
  }
  lb_spec *s;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load(argv[0], &s, &d);
  if (rc) {
    lb_spec_print_diag(stderr, &d);
    return lb_exit_code(rc);
  }
  lb_spec_write(s, stdout);
  lb_spec_free(s);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* One line per bundled spec; '*' marks the one `--spec host` would pick. */
static int list(void) {
  char **names;
  lb_diag d;
  lb_diag_clear(&d);
  int n = lb_spec_list_names(&names, &d), status = 0;
  if (n < 0) {
    lb_spec_print_diag(stderr, &d);
    return 2;
  }
  lb_spec *host = NULL;
  lb_diag hd;
  lb_diag_clear(&hd);
  if (lb_spec_load("host", &host, &hd) != 0) host = NULL;
  printf("  %-22s %-28s %5s %5s  %s\n", "name", "llvm triple", "int8", "fp32",
         "description (peak MACs/cycle/core)");
  for (int i = 0; i < n; i++) {
    lb_spec *s;
    lb_diag_clear(&d);
    if (lb_spec_load(names[i], &s, &d) != 0) {
      lb_spec_print_diag(stderr, &d);
      status = 2;
      continue;
    }
    int mark = host && strcmp(lb_spec_name(host), lb_spec_name(s)) == 0;
    printf("%c %-22s %-28s %5g %5g  %s\n", mark ? '*' : ' ', lb_spec_name(s),
           lb_spec_llvm_triple(s), lb_spec_int8_peak_macs(s), lb_spec_fp32_peak_macs(s),
           lb_spec_description(s));
    lb_spec_free(s);
  }
  printf("(%s; * = what --spec host picks on this machine)\n", lb_spec_dir());
  lb_spec_free(host);
  lb_spec_names_free(names, n);
  return status;
}

int lb_cmd_spec(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "check") == 0) return check(argc - 2, argv + 2);
  if (strcmp(argv[1], "show") == 0) return show(argc - 2, argv + 2);
  if (strcmp(argv[1], "list") == 0 && argc == 2) return list();
  if (strcmp(argv[1], "calibrate") == 0) return lb_cmd_spec_calibrate(argc - 2, argv + 2);
  fprintf(stderr, "lowbit spec: unknown subcommand or arguments '%s' (try 'lowbit spec --help')\n",
          argv[1]);
  return 2;
}
