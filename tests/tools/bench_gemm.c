/* bench_gemm: JIT-compiles the fp32 GEMM for a few large shapes, times it (median of several
 * runs) and prints GFLOP/s, FMA/cycle and the fraction of fp32 peak. The clock is estimated by
 * timing a chain of dependent integer adds (1 cycle each); the peak is measured by JIT-running
 * independent vector FMA chains at the same vector width.
 * With --resnet18 it instead compiles ResNet-18's 20 convs + fc (batch 1, 224x224, NHWC) into one
 * module, reports the compile time and times each layer.
 * All times are this thread's CPU time, so other processes sharing the cores do not count.
 * With --sub SPEC it compares int8, int4 and int2 weights on integer gemm nodes (see there).
 * usage: bench_gemm [--bits 128|256|512] [--l1 BYTES] [--l2 BYTES] [--cold] [--rowmajor-b]
 *                   [--resnet18 | --sub SPEC [--wmax A,B,C] | MxNxK ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "spec.h"
#include "target.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Cycles per second from 10 dependent adds per iteration (latency 1 each). */
static double clock_hz(void) {
#if defined(__x86_64__) || defined(__aarch64__)
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    long x = 0, y = 1, n = 20000000;
    double t0 = now();
    for (long i = 0; i < n; i++) {
#if defined(__x86_64__)
      __asm__ volatile("add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
                       "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0"
                       : "+r"(x) : "r"(y));
#else
      __asm__ volatile("add %0,%0,%1\n\tadd %0,%0,%1\n\tadd %0,%0,%1\n\tadd %0,%0,%1\n\t"
                       "add %0,%0,%1\n\tadd %0,%0,%1\n\tadd %0,%0,%1\n\tadd %0,%0,%1\n\t"
                       "add %0,%0,%1\n\tadd %0,%0,%1" : "+r"(x) : "r"(y));
#endif
    }
    double hz = 10.0 * (double)n / (now() - t0);
    if (hz > best) best = hz;
  }
  return best;
#else
  return 0;
#endif
}

/* void peak(i64 iters): 2*regs/3 independent FMA chains on <VW x float>; stores nothing but
 * the sum, so nothing is dead. Returns FMA (scalar lanes) per call via *fmas. */
static LLVMValueRef emit_peak(LLVMModuleRef mod, const lb_kern_cfg *cfg, int *chains) {
  lb_kir k;
  LLVMValueRef fn;
  LLVMTypeRef params[2] = {0};
  params[1] = LLVMInt64TypeInContext(LLVMGetModuleContext(mod));
  lb_kir_begin(&k, mod, cfg, "bench_peak", params, 2, 0, &fn);
  int n = cfg->vector_regs - 2; /* two registers hold the constant operands */
  LLVMValueRef init[64], next[64];
  for (int i = 0; i < n; i++) init[i] = lb_kir_vconst(&k, (float)i);
  LLVMValueRef x = lb_kir_vconst(&k, 0.999f), y = lb_kir_vconst(&k, 0.001f);
  lb_kloop l;
  lb_kloop_begin(&k, &l, lb_kir_i64(&k, 0), LLVMGetParam(k.fn, 1), init, n);
  for (int i = 0; i < n; i++) next[i] = lb_kir_fma(&k, l.carry[i], x, y);
  lb_kloop_end(&k, &l, lb_kir_i64(&k, 1), next);
  LLVMValueRef s = l.carry[0];
  for (int i = 1; i < n; i++) s = LLVMBuildFAdd(k.b, s, l.carry[i], "");
  lb_kir_vstore(&k, s, LLVMGetParam(k.fn, 0), k.vw);
  LLVMBuildRetVoid(k.b);
  fn = k.fn;
  lb_kir_end(&k);
  *chains = n;
  return fn;
}

typedef void (*gemm_fn)(const float *, const float *, const float *, const float *, float *,
                        float *);
typedef void (*peak_fn)(float *, int64_t);

/* Median and best of 9 samples of about 1 GFLOP each (the best shows the kernel's speed when
 * other processes share the cores; the median is the figure to report). */
static double median_secs(gemm_fn f, const float *a, float *const *bp, int nb, const float *bias,
                          float *c, double flops, double *best) {
  int reps = 9, inner = (int)(1e9 / flops) + 1;
  double t[9];
  f(a, bp[0], bias, NULL, c, NULL);
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < inner; i++) f(a, bp[(r * inner + i) % nb], bias, NULL, c, NULL);
    t[r] = (now() - t0) / inner;
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp_double);
  *best = t[0];
  return t[reps / 2];
}

/* ResNet-18 convolutions: h=w, c_in, c_out, kernel, stride, pad, repeat count. */
static const int r18[][7] = {
    {224, 3, 64, 7, 2, 3, 1},    {56, 64, 64, 3, 1, 1, 4},    {56, 64, 128, 3, 2, 1, 1},
    {28, 128, 128, 3, 1, 1, 3},  {56, 64, 128, 1, 2, 0, 1},   {28, 128, 256, 3, 2, 1, 1},
    {14, 256, 256, 3, 1, 1, 3},  {28, 128, 256, 1, 2, 0, 1},  {14, 256, 512, 3, 2, 1, 1},
    {7, 512, 512, 3, 1, 1, 3},   {14, 256, 512, 1, 2, 0, 1},
};
#define N_R18 ((int)(sizeof r18 / sizeof r18[0]))

/* Median of 5 runs of one conv layer (repeated `times` in the network); adds to the totals. */
static void time_conv(const lb_kern_cfg *cfg, const lb_conv_desc *d, gemm_fn f, float *ws,
                      double hz, int times, double *total, double *total_fma) {
  int64_t kdim = d->kh * d->kw * d->c_in;
  float *x = calloc((size_t)(d->h * d->w * d->c_in), 4);
  float *wp = calloc(lb_pack_gemm_b_size(cfg, kdim, d->c_out), 1);
  float *bias = calloc((size_t)d->c_out, 4), *y = malloc((size_t)(d->oh * d->ow * d->c_out * 4));
  double fmas = (double)d->oh * d->ow * d->c_out * kdim, t[5];
  for (int r = 0; r < 5; r++) {
    double s0 = now();
    f(x, wp, bias, NULL, y, ws);
    t[r] = now() - s0;
  }
  qsort(t, 5, sizeof t[0], cmp_double);
  *total += t[2] * times;
  *total_fma += fmas * times;
  printf("%4lld %6lld %5lld %5lld %3lld %3d %9.3f %9.1f %8.2f\n", (long long)d->h,
         (long long)d->c_in, (long long)d->c_out, (long long)d->kh, (long long)d->sh, times,
         t[2] * 1e3, 2 * fmas / t[2] / 1e9, fmas / t[2] / hz);
  free(x), free(wp), free(bias), free(y);
}

static int resnet18(const lb_kern_cfg *cfg, double hz, lb_diag *diag) {
  lb_kjit *jit;
  LLVMModuleRef mod;
  LB_TRY(lb_kjit_new(&jit, &mod, diag));
  double t0 = now();
  char *names[N_R18 + 1] = {0};
  lb_conv_desc d[N_R18];
  size_t scratch = 0;
  int n_layers = 0, rc = 0;
  for (int i = 0; i < N_R18; i++) {
    d[i] = (lb_conv_desc){.n = 1, .h = r18[i][0], .w = r18[i][0], .c_in = r18[i][1],
                          .c_out = r18[i][2], .kh = r18[i][3], .kw = r18[i][3], .sh = r18[i][4],
                          .sw = r18[i][4], .dh = 1, .dw = 1, .pad_t = r18[i][5],
                          .pad_l = r18[i][5], .pad_b = r18[i][5], .pad_r = r18[i][5],
                          .has_bias = 1, .act = LB_ACT_RELU};
    lb_kern_out out;
    if ((rc = lb_conv_desc_finish(&d[i], diag)) ||
        (rc = lb_emit_conv_f32(mod, cfg, &d[i], &out, diag)))
      goto done;
    if (out.scratch_bytes > scratch) scratch = out.scratch_bytes;
    size_t len;
    names[i] = strdup(LLVMGetValueName2(out.fn, &len));
    n_layers += r18[i][6];
  }
  lb_gemm_desc fc = {.m = 1, .n = 1000, .k = 512, .lda = 512, .ldc = 1000, .has_bias = 1};
  lb_kern_out out;
  if ((rc = lb_emit_gemm_f32(mod, cfg, &fc, &out, diag))) goto done;
  size_t len;
  names[N_R18] = strdup(LLVMGetValueName2(out.fn, &len));
  void *fns[N_R18 + 1];
  if ((rc = lb_kjit_finish(jit, (const char *const *)names, fns, N_R18 + 1, diag))) goto done;
  printf("resnet18: %d conv layers (%d distinct) + fc compiled (emit + O3 + codegen) in %.2f s\n",
         n_layers, N_R18, now() - t0);
  printf("%4s %6s %5s %5s %3s %3s %9s %9s %8s\n", "hw", "cin", "cout", "k", "s", "x",
         "ms", "GFLOP/s", "FMA/cyc");
  float *ws = aligned_alloc(64, (scratch + 64) / 64 * 64);
  double total = 0, total_fma = 0;
  for (int i = 0; i < N_R18; i++) time_conv(cfg, &d[i], (gemm_fn)fns[i], ws, hz, r18[i][6],
                                            &total, &total_fma);
  printf("all convs: %.2f ms, %.1f GFLOP/s, %.2f FMA/cycle\n", total * 1e3,
         2 * total_fma / total / 1e9, total_fma / total / hz);
  free(ws);
done:
  for (int i = 0; i <= N_R18; i++) free(names[i]);
  lb_kjit_free(jit);
  return rc;
}

/* With --cold, each run reads its weights from one of enough copies to overflow the caches
 * (128 MB), as a model's weights do at batch 1. */
static int cold_weights;
/* With --rowmajor-b, B is not packed: the GEMM reads a plain row-major [K][N] matrix. */
static int rowmajor_b;

/* Times one GEMM over deterministic operands and prints one table row. */
static void time_gemm(const lb_kern_cfg *cfg, const lb_gemm_desc *d, gemm_fn f, double hz,
                      double peak) {
  size_t bsz = rowmajor_b ? (size_t)(d->k * d->n * 4) : lb_pack_gemm_b_size(cfg, d->k, d->n);
  int nb = cold_weights ? (int)((128u << 20) / bsz) + 1 : 1;
  if (nb > 512) nb = 512;
  float *a = aligned_alloc(64, (size_t)(d->m * d->k * 4 + 63) / 64 * 64);
  float *b = malloc((size_t)(d->k * d->n * 4)), *bp[512];
  for (int i = 0; i < nb; i++) bp[i] = aligned_alloc(64, (bsz + 63) / 64 * 64);
  float *bias = calloc((size_t)d->n, 4);
  float *c = aligned_alloc(64, (size_t)(d->m * d->n * 4 + 63) / 64 * 64);
  for (int64_t i = 0; i < d->m * d->k; i++) a[i] = (float)(i % 7) * 0.1f;
  for (int64_t i = 0; i < d->k * d->n; i++) b[i] = (float)(i % 5) * 0.1f;
  for (int i = 0; i < nb; i++) {
    if (rowmajor_b) memcpy(bp[i], b, bsz);
    else lb_pack_gemm_b(cfg, d->k, d->n, b, 0, bp[i]);
  }
  double fmas = (double)d->m * d->n * d->k;
  double best, sec = median_secs(f, a, bp, nb, bias, c, 2 * fmas, &best);
  double fpc = fmas / sec / hz;
  printf("%6lld %6lld %6lld %9.3f %9.1f %9.2f %7.1f%% %7.1f%% %9.2f\n", (long long)d->m,
         (long long)d->n, (long long)d->k, sec * 1e3, 2 * fmas / sec / 1e9, fpc, 100 * fpc / 16,
         100 * fpc / peak, fmas / best / hz);
  for (int i = 0; i < nb; i++) free(bp[i]);
  free(a), free(b), free(bias), free(c);
}

/* Emits every shape plus the peak probe into one module, then times them. */
static int run_gemms(const lb_kern_cfg *cfg, int64_t (*shapes)[3], int n_shapes, lb_diag *diag) {
  lb_kjit *jit;
  LLVMModuleRef mod;
  LB_TRY(lb_kjit_new(&jit, &mod, diag));
  char *names[17] = {0};
  void *fns[17];
  lb_gemm_desc d[16];
  int rc = 0, chains, mr, nr;
  double t0 = now();
  for (int s = 0; s < n_shapes; s++) {
    d[s] = (lb_gemm_desc){.m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2],
                          .lda = shapes[s][2], .ldc = shapes[s][1], .has_bias = 1,
                          .b_rowmajor = rowmajor_b, .ldb = shapes[s][1]};
    lb_kern_out out;
    if ((rc = lb_emit_gemm_f32(mod, cfg, &d[s], &out, diag))) goto done;
    size_t len;
    names[s] = strdup(LLVMGetValueName2(out.fn, &len));
  }
  emit_peak(mod, cfg, &chains);
  names[n_shapes] = strdup("bench_peak");
  if ((rc = lb_kjit_finish(jit, (const char *const *)names, fns, n_shapes + 1, diag))) goto done;
  double compile_s = now() - t0, hz = clock_hz();
  lb_kern_gemm_tile(cfg, &mr, &nr);
  float pk[16];
  int64_t iters = 100000000;
  double tp = now();
  ((peak_fn)fns[n_shapes])(pk, iters);
  double peak = (double)iters * chains * (cfg->vector_bits / 32) / (now() - tp) / hz;
  printf("isa %s tile %dx%d  clock %.2f GHz (dependent adds)  compile+O3 %.2f s for %d GEMMs\n",
         lb_kern_isa(cfg), mr, nr, hz / 1e9, compile_s, n_shapes);
  printf("measured peak at %d bits: %.1f FMA/cycle (nominal 16 for AVX2 ymm)\n",
         cfg->vector_bits, peak);
  printf("%6s %6s %6s %9s %9s %9s %8s %8s %9s\n", "M", "N", "K", "ms", "GFLOP/s", "FMA/cyc",
         "%of16", "%ofpeak", "best:FMA/c");
  for (int s = 0; s < n_shapes; s++) time_gemm(cfg, &d[s], (gemm_fn)fns[s], hz, peak);
done:
  for (int s = 0; s <= n_shapes; s++) free(names[s]);
  lb_kjit_free(jit);
  return rc;
}

/* ---- int8 vs int4 / int2 weights (--sub SPEC), engineer k4 ----------------------------------
 * One integer gemm node y = requantize(x w^T + b) per shape and weight width, JIT-compiled for
 * SPEC by the backend (the spec's code, features included): int8 weights (-127..127) run the
 * spec's int8 kernel, i4 (-7..7) and i2 (-1..1) weights the sub-byte kernels. Rounds run the
 * variants in turn and each reports its median, so load on the shared machine hits all alike.
 * Times include the activation packing (a row copy for a gemm), as in a real layer. */

static void sub_setq(lb_graph *g, uint32_t v, uint32_t n, float s) {
  lb_quant *q = &g->values[v].q;
  q->n = n, q->axis = n > 1 ? 0 : -1;
  q->scale = lb_arena_array(&g->arena, n, sizeof(float));
  q->zero_point = lb_arena_array(&g->arena, n, sizeof(int32_t));
  for (uint32_t i = 0; i < n; i++) q->scale[i] = s * (1.0f + 0.01f * (float)(i % 7)), q->zero_point[i] = 0;
}

/* x i8 [M,K], w i8 [N,K] with values in [-wmax, wmax], bias i32 [N], y i8 [M,N]. */
static lb_graph *sub_graph(int64_t M, int64_t N, int64_t K, int wmax) {
  lb_graph *g = lb_graph_new("sub");
  int64_t xd[2] = {M, K}, wd[2] = {N, K}, yd[2] = {M, N};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_I8, 2, xd), in[3];
  sub_setq(g, x, 1, 0.05f);
  lb_graph_add_input(g, x);
  int8_t *w = malloc((size_t)(N * K));
  int32_t *b = malloc((size_t)N * 4);
  for (int64_t i = 0; i < N * K; i++) w[i] = (int8_t)((i * 7919 + i / 13) % (2 * wmax + 1) - wmax);
  for (int64_t i = 0; i < N; i++) b[i] = (int32_t)(i % 101) - 50;
  in[0] = x;
  in[1] = lb_graph_add_const(g, "w", LB_DTYPE_I8, 2, wd, w, (size_t)(N * K));
  sub_setq(g, in[1], (uint32_t)N, 0.02f / (float)wmax);
  in[2] = lb_graph_add_const(g, "b", LB_DTYPE_I32, 1, &wd[0], b, (size_t)N * 4);
  sub_setq(g, in[2], 1, 1e-3f);
  free(w), free(b);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_I8, 2, yd);
  sub_setq(g, y, 1, 0.1f);
  uint32_t k = lb_graph_add_node(g, LB_OP_GEMM, "q", in, 3, &y, 1);
  g->nodes[k].attr = (lb_attrs){.alpha = 1, .beta = 1, .trans_b = 1};
  lb_graph_add_output(g, y);
  return g;
}

typedef struct sub_var {
  lb_graph *g;
  lb_jit *j;
  void *ws, *x, *y;
  double t[64];
} sub_var;

static int sub_compile(sub_var *v, const lb_spec *spec, int64_t M, int64_t N, int64_t K, int wmax,
                       lb_diag *diag) {
  v->g = sub_graph(M, N, K, wmax);
  LB_TRY(lb_jit_compile(v->g, spec, NULL, &v->j, diag));
  v->ws = aligned_alloc(64, (lb_jit_workspace_size(v->j) + 64) / 64 * 64);
  v->x = malloc((size_t)(M * K)), v->y = malloc((size_t)(M * N));
  for (int64_t i = 0; i < M * K; i++) ((int8_t *)v->x)[i] = (int8_t)(i * 31 % 251 - 125);
  return 0;
}

static double sub_median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return t[n / 2];
}

/* Weight bounds of the three variants (--wmax A,B,C): int8, int4, int2 by default. */
static int wmax[3] = {127, 7, 1};

static int run_sub(const char *spec_name, int64_t (*shapes)[3], int n_shapes, lb_diag *diag) {
  lb_spec *spec = NULL;
  LB_TRY(lb_spec_load(spec_name, &spec, diag));
  int rc = 0, rounds = 31;
  printf("spec %s: CPU ms per gemm (median of %d rounds), throughput relative to int8 (from the\n"
         "medians, then from the fastest runs)\n",
         lb_spec_name(spec), rounds);
  printf("weights |w| <= %d, %d, %d (columns a, b, c)\n", wmax[0], wmax[1], wmax[2]);
  printf("%6s %6s %6s %9s %9s %9s %8s %8s %8s %8s\n", "M", "N", "K", "ms a", "ms b", "ms c",
         "b/a", "c/a", "min:b", "min:c");
  for (int s = 0; s < n_shapes && !rc; s++) {
    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    sub_var v[3] = {0};
    for (int i = 0; i < 3 && !rc; i++) rc = sub_compile(&v[i], spec, M, N, K, wmax[i], diag);
    for (int r = 0; r < rounds + 2 && !rc; r++)
      for (int i = 0; i < 3; i++) {
        const void *in[1] = {v[i].x};
        void *out[1] = {v[i].y};
        double t0 = now();
        lb_jit_run_fn(v[i].j)(in, out, v[i].ws);
        if (r >= 2) v[i].t[r - 2] = now() - t0; /* two warm-up rounds */
      }
    if (!rc) {
      double ms[3], lo[3];
      for (int i = 0; i < 3; i++) ms[i] = 1e3 * sub_median(v[i].t, rounds), lo[i] = 1e3 * v[i].t[0];
      printf("%6lld %6lld %6lld %9.3f %9.3f %9.3f %8.2f %8.2f %8.2f %8.2f\n", (long long)M,
             (long long)N, (long long)K, ms[0], ms[1], ms[2], ms[0] / ms[1], ms[0] / ms[2],
             lo[0] / lo[1], lo[0] / lo[2]);
    }
    for (int i = 0; i < 3; i++) {
      if (v[i].j) lb_jit_free(v[i].j);
      if (v[i].g) lb_graph_free(v[i].g);
      free(v[i].ws), free(v[i].x), free(v[i].y);
    }
  }
  lb_spec_free(spec);
  return rc;
}

int main(int argc, char **argv) {
  lb_kern_cfg cfg;
  lb_kjit_host_cfg(&cfg);
  int64_t shapes[16][3] = {{1024, 1024, 1024}, {3136, 64, 576}, {784, 128, 1152},
                           {196, 256, 2304}, {49, 512, 4608}, {1, 1000, 512}};
  int n_shapes = 6, first = 1, r18_mode = 0;
  const char *sub_spec = NULL;
  for (int i = 1; i < argc; i++) {
    long long m, n, k;
    if (!strcmp(argv[i], "--bits") && i + 1 < argc) {
      cfg.vector_bits = atoi(argv[++i]);
      cfg.vector_regs = cfg.vector_bits == 256 ? 16 : 32;
    } else if (!strcmp(argv[i], "--l1") && i + 1 < argc) {
      cfg.cache[0] = atoll(argv[++i]);
    } else if (!strcmp(argv[i], "--l2") && i + 1 < argc) {
      cfg.cache[1] = atoll(argv[++i]);
    } else if (!strcmp(argv[i], "--rowmajor-b")) {
      rowmajor_b = 1;
    } else if (!strcmp(argv[i], "--cold")) {
      cold_weights = 1;
    } else if (!strcmp(argv[i], "--resnet18")) {
      r18_mode = 1;
    } else if (!strcmp(argv[i], "--sub") && i + 1 < argc) {
      sub_spec = argv[++i];
    } else if (!strcmp(argv[i], "--wmax") && i + 1 < argc &&
               sscanf(argv[i + 1], "%d,%d,%d", &wmax[0], &wmax[1], &wmax[2]) == 3) {
      i++;
    } else if (sscanf(argv[i], "%lldx%lldx%lld", &m, &n, &k) == 3 && m > 0 && n > 0 && k > 0 &&
               n_shapes < 16) {
      if (first) n_shapes = 0, first = 0;
      shapes[n_shapes][0] = m, shapes[n_shapes][1] = n, shapes[n_shapes][2] = k;
      n_shapes++;
    } else {
      fprintf(stderr, "bench_gemm: argument %d '%s': expected --bits B, --l1 B, --l2 B, "
              "--cold, --rowmajor-b, --resnet18, --sub SPEC, --wmax A,B,C or MxNxK\n", i, argv[i]);
      return 2;
    }
  }
  lb_diag diag = {0};
  if (lb_kern_cfg_check(&cfg, &diag)) {
    fprintf(stderr, "bench_gemm: %s\n", diag.msg);
    return 2;
  }
  int rc = sub_spec  ? run_sub(sub_spec, shapes, n_shapes, &diag)
           : r18_mode ? resnet18(&cfg, clock_hz(), &diag)
                      : run_gemms(&cfg, shapes, n_shapes, &diag);
  if (rc) fprintf(stderr, "bench_gemm: %s\n", diag.msg);
  return rc ? 1 : 0;
}
