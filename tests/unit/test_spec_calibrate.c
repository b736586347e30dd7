/* `lowbit spec calibrate`: on the host spec it writes a spec that loads back, whose conv2d/dense
 * efficiencies are in (0, 1] and differ from nothing else of the source; a spec this machine
 * cannot run is refused with exit 2 and no file; usage errors exit 2. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spec.h"
#include "../silence.h"

static const char *model = LB_SOURCE_DIR "/tests/models/digits_cnn.onnx";

static int run_spec(int argc, char **argv) { return lb_test_silenced(lb_cmd_spec, argc, argv); }

static void tmp_path(char *buf, size_t n, const char *tag) {
  snprintf(buf, n, "%s/speccal_%s_%ld.yaml", LB_BINARY_DIR, tag, (long)getpid());
  remove(buf);
}

START_TEST(calibrate_host) {
  char out[512];
  tmp_path(out, sizeof out, "host");
  char *argv[] = {"spec", "calibrate", "host", "-o", out, "--model", (char *)model, NULL};
  ck_assert_int_eq(run_spec(7, argv), 0);
  lb_spec *cal, *src;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_msg(lb_spec_load(out, &cal, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(lb_spec_load("host", &src, &d), 0);
  ck_assert_str_eq(lb_spec_name(cal), lb_spec_name(src));
  static const lb_spec_opkind kinds[] = {LB_SPEC_CONV2D, LB_SPEC_DENSE};
  int measured = 0;
  for (size_t k = 0; k < 2; k++) {
    const lb_spec_combo *c, *s;
    size_t n = lb_spec_combos(cal, kinds[k], &c);
    ck_assert_uint_eq(n, lb_spec_combos(src, kinds[k], &s));
    for (size_t i = 0; i < n; i++) {
      ck_assert_str_eq(c[i].label, s[i].label);
      ck_assert_msg(c[i].efficiency > 0 && c[i].efficiency <= 1, "%s %g", c[i].label,
                    c[i].efficiency);
      ck_assert(c[i].macs_per_cycle == s[i].macs_per_cycle);
      int fp = c[i].act == LB_DTYPE_F32 && c[i].weight == LB_DTYPE_F32;
      if (fp || c[i].weight == LB_DTYPE_I8) measured++;
      else ck_assert(c[i].efficiency == s[i].efficiency); /* sub-byte, binary: unchanged */
    }
  }
  ck_assert_int_ge(measured, 4); /* f32 and an int8 combination of conv2d and dense */
  /* the file says it was measured */
  FILE *f = fopen(out, "r");
  char line[256];
  ck_assert(f && fgets(line, sizeof line, f));
  ck_assert_ptr_nonnull(strstr(line, "lowbit spec calibrate"));
  fclose(f);
  lb_spec_free(cal);
  lb_spec_free(src);
  remove(out);
}
END_TEST

/* A spec for the other architecture: refused, nothing written. */
START_TEST(calibrate_refuses_foreign) {
  char out[512];
  tmp_path(out, sizeof out, "foreign");
#if defined(__aarch64__)
  char *spec = "x86-64-avx2";
#else
  char *spec = "aarch64-neon";
#endif
  char *argv[] = {"spec", "calibrate", spec, "-o", out, "--model", (char *)model, NULL};
  ck_assert_int_eq(run_spec(7, argv), 2);
  ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

START_TEST(calibrate_usage) {
  char *help[] = {"spec", "calibrate", "--help", NULL};
  ck_assert_int_eq(run_spec(3, help), 0);
  char *no_out[] = {"spec", "calibrate", "host", NULL};
  ck_assert_int_eq(run_spec(3, no_out), 2);
  char *bad[] = {"spec", "calibrate", "host", "-o", "/tmp/x.yaml", "--frob", NULL};
  ck_assert_int_eq(run_spec(6, bad), 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("spec_calibrate");
  TCase *tc = tcase_create("spec_calibrate");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, calibrate_host);
  tcase_add_test(tc, calibrate_refuses_foreign);
  tcase_add_test(tc, calibrate_usage);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
