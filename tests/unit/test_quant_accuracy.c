/* int8 accuracy of the digits models (tests/models): each model is quantized with 100
 * calibration samples for the integer semantics of every bundled spec and with every
 * calibration method, run as an integer-only graph in the reference interpreter on the 360 test
 * samples, and must stay within 0.5 points of its fp32 top-1 accuracy. Specs whose annotation
 * is identical share one run. Also the per-layer SQNR of the simulated-quantization graph
 * against fp32 (printed, and each layer above a floor), and the agreement of the integer graph
 * with the simulated one. LB_TEST_QUICK: only the first spec's plan (all methods) per model. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx.h"
#include "passes.h"
#include "quantize.h"
#include "spec.h"
#include "tensor_io.h"

#include "../digits.h"
#include "../quick.h"

#define MAX_DROP 0.5   /* points of top-1 accuracy */
#define SQNR_FLOOR 12.0 /* dB, every quantized layer, simulated vs fp32 */

typedef struct {
  const char *model, *x, *calib;
} model_case;

static const model_case cases[] = {
    {"digits_mlp", "digits_test_x", "digits_calib_x"},
    {"digits_cnn", "digits_test_x", "digits_calib_x"},
    {"digits_resnet", "digits16_test_x", "digits16_calib_x"},
};

/* Top-1 accuracy in percent; top1[i] receives each prediction when not NULL. */
static double accuracy(const lb_graph *g, const lb_tensor *x, const lb_tensor *y, int64_t *top1) {
  const int64_t *lab = y->data;
  int64_t ok = 0, n = y->dims[0];
  for (int64_t i = 0; i < n; i++) {
    lb_tensor in = sample(g, x, i), out;
    lb_diag d = {0};
    ck_assert_msg(lb_interp_run(g, &in, &out, &d) == 0, "%s", d.msg);
    int64_t p = argmax(out.data, lb_tensor_numel(&out));
    if (top1) top1[i] = p;
    ok += p == lab[i];
    lb_free(out.data);
  }
  return 100.0 * (double)ok / (double)n;
}

/* What decides a spec's int8 graph: activation dtype, per-layer combination, per-value dtype,
 * schemes, axis and class. Specs with equal signatures give the same plan. */
static void signature(const lb_graph *g, const lb_qplan *p, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "%s|", lb_dtype_name(p->act));
  for (uint32_t i = 0; i < g->n_nodes && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%d%s%s,", p->l[i].integer, lb_dtype_name(p->l[i].out),
                          lb_dtype_name(p->l[i].weight));
  for (uint32_t v = 0; v < g->n_values && k < n; v++)
    k += (size_t)snprintf(buf + k, n - k, "%s%u%d%u;", lb_dtype_name(p->v[v].dtype),
                          p->v[v].schemes, p->v[v].axis, p->v[v].cls);
}

static lb_qplan *plan_for(const lb_graph *g, const char *spec) {
  lb_spec *s;
  lb_diag d = {0};
  ck_assert_msg(lb_spec_load(spec, &s, &d) == 0, "%s", d.msg);
  lb_qplan *p = lb_qplan_new(g);
  ck_assert_ptr_nonnull(p);
  ck_assert_msg(lb_quant_annotate(g, s, p, &d) == 0, "%s", d.msg);
  lb_spec_free(s);
  return p;
}


START_TEST(accuracy_all_specs_and_methods) {
  const model_case *c = &cases[_i];
  lb_graph *g = load_prepared(c->model);
  lb_tensor x = load_npy(c->x), y = load_npy("digits_test_y"), cal = load_npy(c->calib);
  ck_assert_int_eq(cal.dims[0], 100);
  double fp32 = accuracy(g, &x, &y, NULL);
  printf("%s: fp32 top-1 %.2f%%\n", c->model, fp32);
  char **names, seen[8][4096], sig[4096];
  lb_diag d = {0};
  int n = lb_spec_list_names(&names, &d), n_seen = 0;
  ck_assert_msg(n >= 1, "%s", d.msg);
  for (int si = 0; si < n; si++) {
    lb_qplan *p = plan_for(g, names[si]);
    signature(g, p, sig, sizeof sig);
    int dup = -1;
    for (int k = 0; k < n_seen; k++)
      if (strcmp(seen[k], sig) == 0) dup = k;
    if (dup >= 0 || n_seen == 8 || (n_seen == 1 && lb_test_quick())) {
      printf("  %-20s %s\n", names[si],
             dup >= 0       ? "same integer plan as an earlier spec"
             : n_seen == 8  ? "skipped (8 plans checked)"
                            : "skipped (LB_TEST_QUICK)");
      lb_qplan_free(p);
      continue;
    }
    snprintf(seen[n_seen++], sizeof seen[0], "%s", sig);
    for (int m = 0; m < LB_CALIB_COUNT; m++) {
      lb_graph *q = digits_realize(g, p, &cal, (lb_calib_method)m, LB_REALIZE_INT);
      double acc = accuracy(q, &x, &y, NULL);
      printf("  %-20s %-10s act %s  int8 top-1 %.2f%% (fp32 %.2f%%)\n", names[si],
             lb_calib_method_name((lb_calib_method)m), lb_dtype_name(p->act), acc, fp32);
      ck_assert_msg(fp32 - acc <= MAX_DROP, "%s %s %s: int8 %.2f%% vs fp32 %.2f%%", c->model,
                    names[si], lb_calib_method_name((lb_calib_method)m), acc, fp32);
      lb_graph_free(q);
    }
    lb_qplan_free(p);
  }
  lb_spec_names_free(names, n);
  lb_free(x.data), lb_free(y.data), lb_free(cal.data);
  lb_graph_free(g);
}
END_TEST

/* ---- per-layer SQNR ----------------------------------------------------------------------- */

static int read_row(void *user, int64_t i, float *dst, lb_diag *d) {
  (void)d;
  const lb_tensor *x = user;
  int64_t per = lb_tensor_numel(x) / x->dims[0];
  memcpy(dst, (const float *)x->data + i * per, (size_t)per * sizeof *dst);
  return 0;
}

START_TEST(sqnr_per_layer) {
  const model_case *c = &cases[_i];
  lb_graph *g = load_prepared(c->model);
  lb_tensor x = load_npy(c->x), cal = load_npy(c->calib);
  lb_qplan *p = plan_for(g, "x86-64-avx2");
  lb_graph *sim = digits_realize(g, p, &cal, LB_CALIB_AVG_MAX, LB_REALIZE_SIM);
  lb_calib_source src = {x.dims[0], lb_tensor_numel(&x) / x.dims[0], read_row, &x};
  double *db = lb_calloc(g->n_nodes, sizeof *db);
  lb_diag d = {0};
  ck_assert_msg(lb_quant_sqnr(g, p, sim, &src, 100, db, &d) == 0, "%s", d.msg);
  printf("%s: per-layer SQNR, simulated int8 (x86-64-avx2, avg-max) vs fp32, 100 test samples:\n",
         c->model);
  int n_layers = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    if (db[n] != db[n]) continue;
    n_layers++;
    printf("  %-36s %-15s %6.1f dB\n", g->values[g->nodes[n].out[0]].name,
           lb_op_get(g->nodes[n].op)->name, db[n]);
    ck_assert_msg(db[n] > SQNR_FLOOR, "%s: %s SQNR %.1f dB", c->model,
                  g->values[g->nodes[n].out[0]].name, db[n]);
  }
  ck_assert_int_ge(n_layers, 2);
  lb_free(db);
  lb_free(x.data), lb_free(cal.data);
  lb_qplan_free(p);
  lb_graph_free(sim), lb_graph_free(g);
}
END_TEST

/* The integer graph and the simulated one agree on nearly every prediction. */
START_TEST(integer_matches_simulated) {
  const model_case *c = &cases[_i];
  lb_graph *g = load_prepared(c->model);
  lb_tensor x = load_npy(c->x), y = load_npy("digits_test_y"), cal = load_npy(c->calib);
  lb_qplan *p = plan_for(g, "x86-64-avx2");
  lb_graph *qi = digits_realize(g, p, &cal, LB_CALIB_MAX, LB_REALIZE_INT);
  lb_graph *qs = digits_realize(g, p, &cal, LB_CALIB_MAX, LB_REALIZE_SIM);
  int64_t n = y.dims[0], *ti = lb_calloc((size_t)n, sizeof *ti), *ts = lb_calloc((size_t)n, sizeof *ts);
  double ai = accuracy(qi, &x, &y, ti), as = accuracy(qs, &x, &y, ts);
  int64_t same = 0;
  for (int64_t i = 0; i < n; i++) same += ti[i] == ts[i];
  printf("%s: integer %.2f%%, simulated %.2f%%, same top-1 on %lld/%lld\n", c->model, ai, as,
         (long long)same, (long long)n);
  ck_assert_int_ge(same, n - 2);
  lb_free(ti), lb_free(ts), lb_free(x.data), lb_free(y.data), lb_free(cal.data);
  lb_qplan_free(p);
  lb_graph_free(qi), lb_graph_free(qs), lb_graph_free(g);
}
END_TEST

int main(void) {
  Suite *s = suite_create("quant_accuracy");
  TCase *t = tcase_create("digits");
  tcase_set_timeout(t, 900);
  int nc = (int)(sizeof cases / sizeof *cases);
  tcase_add_loop_test(t, accuracy_all_specs_and_methods, 0, nc);
  tcase_add_loop_test(t, sqnr_per_layer, 0, nc);
  tcase_add_loop_test(t, integer_matches_simulated, 0, nc);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_set_fork_status(r, CK_NOFORK);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
