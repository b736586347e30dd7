/* The integer requantize definitions (fp32, fixed_point, shift: quant.h gives the exact
 * rules), the scale and zero-point helpers every pass and kernel uses, and the quantization
 * plan with its YAML writer and located reader. Invariant: no other file rounds, clamps or
 * scales an int32 accumulator; the backends emit the arithmetic of lb_requantize(2)(_by). */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "quant.h"
#include "spec.h"

/* ---- the integer semantics ---------------------------------------------------------------- */

/* Clamp in float, then round half to even. The bounds are exact in fp32 (|bound| < 2^24 for
 * every dtype we store), and a clamped value rounds inside them, so no further saturation. */
static int32_t round_clamped(float x, int32_t zp, int32_t lo, int32_t hi) {
  float flo = (float)(lo - zp), fhi = (float)(hi - zp);
  if (!(x >= flo)) x = flo; /* NaN goes to the low bound, never reaches the conversion */
  if (x > fhi) x = fhi;
  return (int32_t)nearbyintf(x) + zp;
}

int32_t lb_requantize(int32_t acc, float m, int32_t zp, int32_t lo, int32_t hi) {
  float x = (float)acc * m;
  return round_clamped(x, zp, lo, hi);
}

int32_t lb_requantize2(int32_t a, float ma, int32_t b, float mb, int32_t zp, int32_t lo, int32_t hi) {
  float x = (float)a * ma;
  float y = (float)b * mb;
  float s = x + y;
  return round_clamped(s, zp, lo, hi);
}

/* ---- integer-only requantize (quant.h gives the definition) ------------------------------ */

lb_qfixed lb_qfixed_of(float m) {
  uint32_t u;
  memcpy(&u, &m, sizeof u);
  int32_t e = (int32_t)((u >> 23) & 255u);
  lb_qfixed f = {0, 0};
  if (e == 0) return f; /* zero or subnormal: |acc * m| < 2^-95, every result is 0 */
  f.mult = (int32_t)(((u & 0x7fffffu) | 0x800000u) << 7);
  if (u >> 31) f.mult = -f.mult;
  f.shift = e - 126;
  return f;
}

int lb_requant_integer(int method) {
  return method == LB_REQUANT_FIXED_POINT || method == LB_REQUANT_SHIFT;
}

/* floor(v / 2^s): GCC and clang define >> of a negative value as the arithmetic shift. */
static int64_t floor_shift(int64_t v, int s) { return v >> s; }

int64_t lb_qfixed_term(int method, int32_t acc, float m) {
  lb_qfixed f = lb_qfixed_of(m);
  int64_t M = f.mult;
  int32_t sh = f.shift;
  int pow2 = method == LB_REQUANT_SHIFT && (M == (1 << 30) || M == -(1 << 30));
  if (pow2) sh -= 1; /* m = +-2^sh: t = +-x below */
  int ls = sh < 0 ? 0 : sh > 32 ? 32 : sh, rs = sh > 0 ? 0 : -sh > 40 ? 40 : -sh;
  int64_t x = (int64_t)acc * ((int64_t)1 << ls);
  x = x < INT32_MIN ? INT32_MIN : x > INT32_MAX ? INT32_MAX : x;
  int64_t t = floor_shift(x * M + ((int64_t)1 << 30), 31);
  if (pow2) t = M > 0 ? x : x == INT32_MIN ? INT32_MAX : -x; /* saturating negate */
  return floor_shift(t + (((int64_t)1 << rs) >> 1), rs);
}

static int32_t clamp_zp(int64_t y, int32_t zp, int32_t lo, int32_t hi) {
  int64_t l = (int64_t)lo - zp, h = (int64_t)hi - zp;
  return (int32_t)((y < l ? l : y > h ? h : y) + zp);
}

int32_t lb_requantize_by(int method, int32_t acc, float m, int32_t zp, int32_t lo, int32_t hi) {
  if (!lb_requant_integer(method)) return lb_requantize(acc, m, zp, lo, hi);
  return clamp_zp(lb_qfixed_term(method, acc, m), zp, lo, hi);
}

int32_t lb_requantize2_by(int method, int32_t a, float ma, int32_t b, float mb, int32_t zp,
                          int32_t lo, int32_t hi) {
  if (!lb_requant_integer(method)) return lb_requantize2(a, ma, b, mb, zp, lo, hi);
  return clamp_zp(lb_qfixed_term(method, a, ma) + lb_qfixed_term(method, b, mb), zp, lo, hi);
}

float lb_qpow2_up(float s) {
  if (!(s > 0.0f) || !isfinite(s)) return s;
  int e;
  float f = frexpf(s, &e); /* s = f * 2^e, 0.5 <= f < 1 */
  return ldexpf(1.0f, f == 0.5f ? e - 1 : e);
}

void lb_qparams_pow2(float lo, float hi, lb_dtype t, int symmetric, float *s, int32_t *zp) {
  lb_qparams(lo, hi, t, symmetric, s, zp);
  *s = lb_qpow2_up(*s);
  if (!(lo <= 0.0f)) lo = 0.0f; /* widened to include 0 as lb_qparams does */
  if (!(hi >= 0.0f)) hi = 0.0f;
  if (symmetric || !(hi - lo > 0.0f)) return;
  int32_t qmin, qmax;
  lb_qrange(t, &qmin, &qmax);
  double z = nearbyint((double)qmin - lo / *s);
  *zp = z < qmin ? qmin : z > qmax ? qmax : (int32_t)z;
}

float lb_qmul(float s_in, float s_w, float s_out) {
  return (float)((double)s_in * (double)s_w / (double)s_out);
}

float lb_qmul_pool(float s_in, float s_out, int64_t count) {
  return (float)((double)s_in / ((double)s_out * (double)(count > 0 ? count : 1)));
}

void lb_qrange(lb_dtype t, int32_t *qmin, int32_t *qmax) {
  switch (t) {
  case LB_DTYPE_U8: *qmin = 0, *qmax = 255; break;
  case LB_DTYPE_I8: *qmin = -128, *qmax = 127; break;
  case LB_DTYPE_I16: *qmin = -32768, *qmax = 32767; break;
  case LB_DTYPE_I4: *qmin = -8, *qmax = 7; break; /* sub-byte weights (search) */
  case LB_DTYPE_U4: *qmin = 0, *qmax = 15; break;
  case LB_DTYPE_I2: *qmin = -2, *qmax = 1; break;
  case LB_DTYPE_U2: *qmin = 0, *qmax = 3; break;
  case LB_DTYPE_I7: *qmin = -64, *qmax = 63; break; /* narrow weights in 8-bit storage */
  case LB_DTYPE_I6: *qmin = -32, *qmax = 31; break; /* (rn) */
  case LB_DTYPE_I5: *qmin = -16, *qmax = 15; break;
  case LB_DTYPE_B1: *qmin = -1, *qmax = 1; break; /* +-1 */
  default: *qmin = INT32_MIN, *qmax = INT32_MAX; break;
  }
}

int32_t lb_qquantize(float x, float s, int32_t zp, int32_t qmin, int32_t qmax) {
  float r = x / s;
  if (r != r) return zp < qmin ? qmin : zp > qmax ? qmax : zp;
  double q = (double)nearbyintf(r) + zp; /* double: an int32 zero point plus a huge r */
  if (q < qmin) return qmin;
  if (q > qmax) return qmax;
  return (int32_t)q;
}

void lb_qact_bounds(int act, float act_min, float act_max, lb_dtype t, float s, int32_t zp,
                    int32_t *lo, int32_t *hi) {
  int32_t qmin, qmax;
  lb_qrange(t, &qmin, &qmax);
  *lo = qmin, *hi = qmax;
  if (act == LB_ACT_RELU) {
    *lo = lb_qquantize(0.0f, s, zp, qmin, qmax);
  } else if (act == LB_ACT_CLIP) {
    *lo = lb_qquantize(act_min, s, zp, qmin, qmax);
    *hi = lb_qquantize(act_max, s, zp, qmin, qmax);
    if (*hi < *lo) *hi = *lo;
  }
}

void lb_qparams(float lo, float hi, lb_dtype t, int symmetric, float *s, int32_t *zp) {
  int32_t qmin, qmax;
  lb_qrange(t, &qmin, &qmax);
  if (!(lo <= 0.0f)) lo = 0.0f; /* also catches NaN */
  if (!(hi >= 0.0f)) hi = 0.0f;
  *zp = 0;
  if (symmetric) {
    float a = fmaxf(-lo, hi);
    *s = a > 0.0f ? (float)((double)a / qmax) : 1.0f;
    return;
  }
  if (!(hi - lo > 0.0f)) {
    *s = 1.0f;
    *zp = qmin < 0 && qmax > 0 ? 0 : qmin;
    return;
  }
  *s = (float)(((double)hi - lo) / ((double)qmax - qmin));
  double z = nearbyint((double)qmin - lo / *s);
  *zp = z < qmin ? qmin : z > qmax ? qmax : (int32_t)z;
}

/* f(v) in fp32, written as the reference interpreter's f32 kernels write it. */
static float act_f32(lb_op op, const lb_attrs *a, float v) {
  switch (op) {
  case LB_OP_LEAKY_RELU: return v < 0.0f ? a->alpha * v : v;
  case LB_OP_SIGMOID: return 1.0f / (1.0f + expf(-v));
  case LB_OP_TANH: return tanhf(v);
  case LB_OP_HARD_SIGMOID: {
    float w = a->alpha * v + a->beta;
    return w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
  }
  default: { /* hard_swish */
    float w = v * (1.0f / 6.0f) + 0.5f;
    return v * (w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w));
  }
  }
}

int lb_qlut(lb_op op, const lb_attrs *a, lb_dtype tin, float sin, int32_t zin, lb_dtype tout,
            float sout, int32_t zout, int32_t table[256]) {
  if (op != LB_OP_LEAKY_RELU && op != LB_OP_SIGMOID && op != LB_OP_TANH &&
      op != LB_OP_HARD_SIGMOID && op != LB_OP_HARD_SWISH)
    return -1;
  int32_t imin, imax, omin, omax;
  lb_qrange(tin, &imin, &imax);
  lb_qrange(tout, &omin, &omax);
  for (int32_t q = imin; q <= imax && q - imin < 256; q++) {
    float x = ((float)q - (float)zin) * sin; /* what DequantizeLinear computes */
    table[q - imin] = lb_qquantize(act_f32(op, a, x), sout, zout, omin, omax);
  }
  return 0;
}

/* ---- the plan ---------------------------------------------------------------------------- */

lb_qplan *lb_qplan_new(const lb_graph *g) {
  lb_qplan *p = lb_calloc(1, sizeof *p);
  if (!p) return NULL;
  lb_arena_init(&p->arena);
  p->n_values = g->n_values;
  p->n_nodes = g->n_nodes;
  p->v = lb_arena_array(&p->arena, g->n_values ? g->n_values : 1, sizeof *p->v);
  p->l = lb_arena_array(&p->arena, g->n_nodes ? g->n_nodes : 1, sizeof *p->l);
  p->spec = p->method = "";
  p->act = LB_DTYPE_F32;
  if (!p->v || !p->l) {
    lb_qplan_free(p);
    return NULL;
  }
  for (uint32_t v = 0; v < g->n_values; v++) {
    p->v[v].dtype = p->v[v].file_dtype = LB_DTYPE_F32;
    p->v[v].axis = -1;
    p->v[v].cls = v;
    p->v[v].bias_of = LB_NONE;
  }
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    p->l[n].combo = "f32";
    p->l[n].act = p->l[n].weight = p->l[n].out = LB_DTYPE_F32;
  }
  return p;
}

void lb_qplan_free(lb_qplan *p) {
  if (!p) return;
  lb_arena_free(&p->arena);
  lb_free(p);
}

int lb_qplan_set(lb_qplan *p, uint32_t v, uint32_t n, int axis, const float *scale,
                 const int32_t *zp) {
  lb_qval *q = &p->v[v];
  if (n > q->n || !q->scale) {
    q->scale = lb_arena_array(&p->arena, n, sizeof *q->scale);
    q->zp = lb_arena_array(&p->arena, n, sizeof *q->zp);
    if (!q->scale || !q->zp) return LB_ERR_NOMEM;
  }
  q->n = n;
  q->axis = axis;
  memcpy(q->scale, scale, n * sizeof *scale);
  if (zp)
    memcpy(q->zp, zp, n * sizeof *zp);
  else
    memset(q->zp, 0, n * sizeof *zp);
  return 0;
}

/* ---- YAML writer ------------------------------------------------------------------------- */

/* A double-quoted YAML string (names may hold any character). */
static void put_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static const char *role_name(lb_qrole r) {
  static const char *const names[] = {"activation", "weight", "bias", "constant", "accumulator"};
  return names[r];
}

static void put_params(FILE *f, const lb_qval *q) {
  if (q->n == 1 && q->axis < 0) {
    fprintf(f, ", scale: %.9g, zero_point: %d", q->scale[0], (int)q->zp[0]);
    return;
  }
  fprintf(f, ", axis: %d, scale: [", q->axis);
  for (uint32_t i = 0; i < q->n; i++) fprintf(f, "%s%.9g", i ? ", " : "", q->scale[i]);
  fputs("], zero_point: [", f);
  for (uint32_t i = 0; i < q->n; i++) fprintf(f, "%s%d", i ? ", " : "", (int)q->zp[i]);
  fputc(']', f);
}

void lb_qplan_write(const lb_qplan *p, const lb_graph *g, FILE *f) {
  fprintf(f, "# lowbit quantization plan. Edit a layer's precision (to f32) or a tensor's scale\n"
             "# and zero_point, then pass the file back with --plan. Layers are keyed by their\n"
             "# output tensor, tensors by name.\n");
  fputs("spec: ", f), put_str(f, p->spec), fputc('\n', f);
  fputs("method: ", f), put_str(f, p->method), fputc('\n', f);
  fprintf(f, "activation: %s\nlayers:\n", lb_dtype_name(p->act));
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    const lb_qlayer *l = &p->l[n];
    fputs("  - {output: ", f), put_str(f, g->values[nd->out[0]].name);
    fprintf(f, ", op: %s, precision: %s", lb_op_get(nd->op)->name, l->integer ? l->combo : "f32");
    if (l->integer)
      fprintf(f, ", act: %s, out: %s", lb_dtype_name(l->act), lb_dtype_name(l->out));
    if (l->integer && lb_requant_integer(l->requant)) /* fp32 (the default) is not written */
      fprintf(f, ", requantize: %s", lb_requant_name((lb_requant)l->requant));
    if (l->integer && l->act == LB_DTYPE_B1) /* (bin) threshold and s_b of a binary layer */
      fprintf(f, ", binary: [%d, %.9g]", (int)l->bin_thr, l->bin_scale);
    fputs(", why: ", f), put_str(f, l->why), fputs("}\n", f);
  }
  fputs("tensors:\n", f);
  for (uint32_t v = 0; v < g->n_values; v++) {
    const lb_qval *q = &p->v[v];
    if (q->dtype == LB_DTYPE_F32) continue;
    fputs("  - {name: ", f), put_str(f, g->values[v].name);
    fprintf(f, ", role: %s, dtype: %s", role_name(q->role), lb_dtype_name(q->dtype));
    if (q->n) put_params(f, q);
    if (q->ranged) fprintf(f, ", range: [%.9g, %.9g]", q->lo, q->hi);
    fputs("}\n", f);
  }
}

int lb_qplan_save(const lb_qplan *p, const lb_graph *g, const char *path, lb_diag *diag) {
  size_t len = strlen(path);
  char *tmp = lb_malloc(len + 16);
  if (!tmp) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, len + 16, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  int rc = 0;
  if (!f) {
    rc = lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
  } else {
    lb_qplan_write(p, g, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
      rc = lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
      remove(tmp);
    }
  }
  lb_free(tmp);
  return rc;
}

void lb_qplan_report(const lb_qplan *p, const lb_graph *g, FILE *f) {
  fprintf(f, "quantization plan (spec %s, activations %s, calibration %s):\n", p->spec,
          lb_dtype_name(p->act), p->method);
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    const lb_node *nd = &g->nodes[n];
    const lb_qlayer *l = &p->l[n];
    const char *name = nd->name[0] ? nd->name : g->values[nd->out[0]].name;
    fprintf(f, "  %3u %-28.28s %-15s %-4s %s\n", n, name, lb_op_get(nd->op)->name,
            l->integer ? lb_dtype_name(l->out) : "f32", l->why);
  }
}

/* ---- YAML reader ------------------------------------------------------------------------- */

typedef struct rd {
  yaml_document_t doc;
  const char *path;
  lb_diag *diag;
  lb_qplan *p;
  const lb_graph *g;
} rd;

static int at_err(rd *r, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int at_err(rd *r, const yaml_node_t *n, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *c = msg; *c; c++)
    if ((unsigned char)*c < 0x20) *c = ' ';
  return lb_diag_err(r->diag, LB_ERR_INPUT, "%s:%d:%d: error: %s", r->path,
                     (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, msg);
}

static yaml_node_t *get(rd *r, yaml_node_t *map, const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *kv = map->data.mapping.pairs.start; kv < map->data.mapping.pairs.top;
       kv++) {
    yaml_node_t *k = yaml_document_get_node(&r->doc, kv->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
      return yaml_document_get_node(&r->doc, kv->value);
  }
  return NULL;
}

static const char *scalar(rd *r, yaml_node_t *n, const char *what, int *rc) {
  if (n && n->type == YAML_SCALAR_NODE) return (const char *)n->data.scalar.value;
  *rc = n ? at_err(r, n, "%s must be a scalar", what) : LB_ERR_INPUT;
  return NULL;
}

static int num(rd *r, yaml_node_t *n, const char *what, double *out) {
  int rc = 0;
  const char *s = scalar(r, n, what, &rc);
  if (!s) return rc;
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(*out))
    return at_err(r, n, "%s: '%s' is not a finite number", what, s);
  return 0;
}

/* Reads a scalar or a sequence of numbers into vals (at most cap). */
static int num_list(rd *r, yaml_node_t *n, const char *what, double *vals, uint32_t cap,
                    uint32_t *count) {
  if (n->type != YAML_SEQUENCE_NODE) {
    *count = 1;
    return num(r, n, what, &vals[0]);
  }
  uint32_t k = 0;
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
       it++, k++) {
    if (k >= cap) return at_err(r, n, "%s: more than %u values", what, cap);
    LB_TRY(num(r, yaml_document_get_node(&r->doc, *it), what, &vals[k]));
  }
  *count = k;
  return 0;
}

/* (bin) "binary: [threshold, s_b]" of a binary layer (lb_qlayer.bin_thr, bin_scale). */
static int read_binary(rd *r, yaml_node_t *bn, uint32_t n) {
  double v[2];
  uint32_t k = 0;
  LB_TRY(num_list(r, bn, "binary", v, 2, &k));
  if (k != 2 || v[0] != floor(v[0]) || fabs(v[0]) > 65536.0 || !(v[1] > 0) || v[1] > 1e30)
    return at_err(r, bn, "binary: expected [threshold (an integer), scale > 0]");
  r->p->l[n].bin_thr = (int32_t)v[0], r->p->l[n].bin_scale = (float)v[1];
  return 0;
}

/* "requantize: fp32 | fixed_point | shift": the method annotate gives the layer. */
static int read_requant(rd *r, yaml_node_t *qn, uint32_t n) {
  int rc = 0;
  const char *m = scalar(r, qn, "requantize", &rc);
  if (!m) return rc;
  int k = LB_REQUANT_FP32;
  while (k < LB_REQUANT_COUNT && strcmp(m, lb_requant_name((lb_requant)k)) != 0) k++;
  if (k == LB_REQUANT_COUNT)
    return at_err(r, qn, "requantize: expected fp32, fixed_point or shift, got '%s'", m);
  char at[600];
  snprintf(at, sizeof at, "%s:%d:%d", r->path, (int)qn->start_mark.line + 1,
           (int)qn->start_mark.column + 1);
  r->p->l[n].requant = k;
  if (!(r->p->l[n].rq_at = lb_arena_strdup(&r->p->arena, at)))
    return lb_diag_err(r->diag, LB_ERR_NOMEM, "out of memory");
  return 0;
}

static uint32_t layer_by_output(const lb_graph *g, const char *name) {
  for (uint32_t n = 0; n < g->n_nodes; n++)
    if (strcmp(g->values[g->nodes[n].out[0]].name, name) == 0) return n;
  return LB_NONE;
}

static int read_layer(rd *r, yaml_node_t *item) {
  int rc = 0;
  if (item->type != YAML_MAPPING_NODE) return at_err(r, item, "a layer must be a mapping");
  yaml_node_t *on = get(r, item, "output"), *pn = get(r, item, "precision");
  if (!on) return at_err(r, item, "layer needs 'output'");
  const char *out = scalar(r, on, "output", &rc);
  if (!out) return rc;
  uint32_t n = layer_by_output(r->g, out);
  if (n == LB_NONE) return at_err(r, on, "no layer writes tensor '%s'", out);
  yaml_node_t *bn = get(r, item, "binary");
  if (bn) LB_TRY(read_binary(r, bn, n));
  yaml_node_t *qn = get(r, item, "requantize");
  if (qn) LB_TRY(read_requant(r, qn, n));
  if (!pn) return 0;
  const char *prec = scalar(r, pn, "precision", &rc);
  if (!prec) return rc;
  if (strcmp(prec, "f32") == 0) {
    r->p->l[n].forced_f32 = 1;
  } else if (!r->p->l[n].integer) {
    return at_err(r, pn, "layer '%s': precision '%s' is not available (%s)", out, prec,
                  r->p->l[n].why);
  } else if (strcmp(prec, r->p->l[n].combo) != 0) {
    /* another combination of the layer's op kind (search: sub-byte weights); annotate checks
     * it against the spec and reports it at this place */
    char at[600];
    snprintf(at, sizeof at, "%s:%d:%d", r->path, (int)pn->start_mark.line + 1,
             (int)pn->start_mark.column + 1);
    r->p->l[n].want = lb_arena_strdup(&r->p->arena, prec);
    r->p->l[n].want_at = lb_arena_strdup(&r->p->arena, at);
    if (!r->p->l[n].want || !r->p->l[n].want_at)
      return lb_diag_err(r->diag, LB_ERR_NOMEM, "out of memory");
  }
  return 0;
}

/* The parameters of one tensor entry, validated against its dtype. */
static int read_params(rd *r, yaml_node_t *item, uint32_t v, lb_dtype t) {
  yaml_node_t *sn = get(r, item, "scale"), *zn = get(r, item, "zero_point"),
              *an = get(r, item, "axis");
  if (!sn) return 0;
  const lb_value *val = &r->g->values[v];
  double ax = -1;
  if (an) LB_TRY(num(r, an, "axis", &ax));
  if (ax != -1 && (ax < 0 || ax >= val->rank || ax != floor(ax)))
    return at_err(r, an, "axis %g is outside tensor '%s' of rank %d", ax, val->name, val->rank);
  uint32_t cap = ax < 0 ? 1 : (uint32_t)val->dims[(int)ax], ns = 0, nz = 0;
  double *s = lb_calloc(cap, sizeof *s), *z = lb_calloc(cap, sizeof *z);
  float *fs = lb_calloc(cap, sizeof *fs);
  int32_t *iz = lb_calloc(cap, sizeof *iz), qmin, qmax;
  int rc = !s || !z || !fs || !iz ? lb_diag_err(r->diag, LB_ERR_NOMEM, "out of memory") : 0;
  lb_qrange(t, &qmin, &qmax);
  if (!rc) rc = num_list(r, sn, "scale", s, cap, &ns);
  if (!rc && zn) rc = num_list(r, zn, "zero_point", z, cap, &nz);
  if (!rc && ns != cap)
    rc = at_err(r, sn, "tensor '%s' needs %u scale%s, got %u", val->name, cap, cap > 1 ? "s" : "", ns);
  if (!rc && zn && nz != cap)
    rc = at_err(r, zn, "tensor '%s' needs %u zero points, got %u", val->name, cap, nz);
  for (uint32_t i = 0; !rc && i < cap; i++) {
    if (!(s[i] > 0) || (float)s[i] <= 0 || !isfinite((float)s[i]))
      rc = at_err(r, sn, "scale[%u] = %g must be positive and finite", i, s[i]);
    else if (z[i] < qmin || z[i] > qmax || z[i] != floor(z[i]))
      rc = at_err(r, zn, "zero_point[%u] = %g is outside %s", i, z[i], lb_dtype_name(t));
    fs[i] = (float)s[i];
    iz[i] = (int32_t)z[i];
  }
  if (!rc) rc = lb_qplan_set(r->p, v, cap, (int)ax, fs, iz);
  lb_free(s), lb_free(z), lb_free(fs), lb_free(iz);
  return rc;
}

static int read_tensor(rd *r, yaml_node_t *item) {
  int rc = 0;
  if (item->type != YAML_MAPPING_NODE) return at_err(r, item, "a tensor must be a mapping");
  yaml_node_t *nn = get(r, item, "name"), *dn = get(r, item, "dtype");
  if (!nn || !dn) return at_err(r, item, "tensor needs 'name' and 'dtype'");
  const char *name = scalar(r, nn, "name", &rc), *dt = name ? scalar(r, dn, "dtype", &rc) : NULL;
  if (!dt) return rc;
  uint32_t v = lb_graph_find_value(r->g, name);
  if (v == LB_NONE) return at_err(r, nn, "no tensor named '%s' in the model", name);
  lb_dtype t;
  if (lb_dtype_from_name(dt, &t) != 0 ||
      !(t == LB_DTYPE_I8 || t == LB_DTYPE_U8 || t == LB_DTYPE_I32 || t == LB_DTYPE_F32 ||
        t == LB_DTYPE_I4 || t == LB_DTYPE_I2 || /* (search) i4/i2: sub-byte weights */
        lb_dtype_narrow8(t) ||                  /* (rn) i7/i6/i5: narrow int8 weights */
        t == LB_DTYPE_B1))                      /* (bin) binary weights */
    return at_err(r, dn, "dtype '%s' is not one of i8, u8, i32, f32, i7, i6, i5, i4, i2, b1", dt);
  lb_qval *q = &r->p->v[v];
  char at[600];
  snprintf(at, sizeof at, "%s:%d:%d", r->path, (int)item->start_mark.line + 1,
           (int)item->start_mark.column + 1);
  q->yaml_at = lb_arena_strdup(&r->p->arena, at);
  if (!q->yaml_at) return lb_diag_err(r->diag, LB_ERR_NOMEM, "out of memory");
  q->file_dtype = t;
  return t == LB_DTYPE_F32 ? 0 : read_params(r, item, v, t);
}

static int read_seq(rd *r, yaml_node_t *root, const char *key, int (*fn)(rd *, yaml_node_t *)) {
  yaml_node_t *s = get(r, root, key);
  if (!s) return 0;
  if (s->type != YAML_SEQUENCE_NODE) return at_err(r, s, "'%s' must be a sequence", key);
  for (yaml_node_item_t *it = s->data.sequence.items.start; it < s->data.sequence.items.top; it++)
    LB_TRY(fn(r, yaml_document_get_node(&r->doc, *it)));
  return 0;
}

int lb_qplan_load(lb_qplan *p, const lb_graph *g, const char *path, lb_diag *diag) {
  FILE *f = fopen(path, "rb");
  if (!f) return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t ps;
  rd r = {.path = path, .diag = diag, .p = p, .g = g};
  if (!yaml_parser_initialize(&ps)) {
    fclose(f);
    return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  }
  yaml_parser_set_input_file(&ps, f);
  int rc = 0;
  if (!yaml_parser_load(&ps, &r.doc)) {
    rc = lb_diag_err(diag, LB_ERR_INPUT, "%s:%d:%d: error: %s", path,
                     (int)ps.problem_mark.line + 1, (int)ps.problem_mark.column + 1,
                     ps.problem ? ps.problem : "malformed YAML");
    yaml_parser_delete(&ps);
    fclose(f);
    return rc;
  }
  yaml_node_t *root = yaml_document_get_root_node(&r.doc);
  if (!root || root->type != YAML_MAPPING_NODE)
    rc = lb_diag_err(diag, LB_ERR_INPUT, "%s:1:1: error: a plan is a mapping with 'layers' and 'tensors'", path);
  if (!rc) rc = read_seq(&r, root, "layers", read_layer);
  if (!rc) rc = read_seq(&r, root, "tensors", read_tensor);
  yaml_document_delete(&r.doc);
  yaml_parser_delete(&ps);
  fclose(f);
  return rc;
}
