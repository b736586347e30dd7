/* Shape inference: one rule per op (a table indexed by lb_op) that sets each output's dtype and
 * dims from the inputs and attributes and rejects inconsistent shapes with a node-located
 * message. Rules also canonicalize attributes (n_spatial, conv kernel from the weights,
 * strides/dilations 0 -> 1, negative axes normalized, default transpose perm, squeeze/reduce
 * axes made explicit); canonicalizing twice changes nothing. The same rules guard the
 * interpreter's kernels through lb_shape_check. */
#include <stdarg.h>
#include <string.h>

#include "interp_impl.h"

/* A tensor as a rule sees it: shape, dtype and (for constants) data. */
typedef struct {
  int present;
  lb_dtype dtype;
  int rank;
  int64_t dims[LB_MAX_RANK];
  const void *data;
} shp;

typedef struct {
  const lb_graph *g;
  uint32_t id;
  const lb_node *n;
  lb_attrs *a;
  const shp *in;
  shp *out;
  lb_diag *diag;
} sctx;

typedef int (*rule_fn)(sctx *c);

/* ---- messages --------------------------------------------------------------------------- */

int lb_node_err(const lb_graph *g, uint32_t id, lb_diag *d, const char *fmt, ...) {
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const lb_node *n = &g->nodes[id];
  const char *op = n->onnx_op && n->onnx_op[0] ? n->onnx_op : lb_op_get(n->op)->name;
  return lb_diag_err(d, LB_ERR_INPUT, "graph.node[%u] \"%s\" (%s): %s", id,
                     n->name ? n->name : "", op, buf);
}

void lb_shape_str(char *buf, size_t size, lb_dtype t, int rank, const int64_t *dims) {
  size_t k = (size_t)snprintf(buf, size, "%s[", lb_dtype_name(t));
  for (int i = 0; i < rank && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, i ? ",%lld" : "%lld", (long long)dims[i]);
  if (k < size) snprintf(buf + k, size - k, "]");
}

static int fail(sctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(sctx *c, const char *fmt, ...) {
  char buf[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return lb_node_err(c->g, c->id, c->diag, "%s", buf);
}

static const char *sstr(const shp *s, char *buf, size_t size) {
  lb_shape_str(buf, size, s->dtype, s->rank, s->dims);
  return buf;
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* Sanity limits that keep every size computation below in int64 range (a fuzzed model can
 * declare any dims): each dim, each tensor's element count, and spatial attributes. */
#define MAX_DIM ((int64_t)1 << 40)
#define MAX_NUMEL ((int64_t)1 << 50)
#define MAX_STRIDE ((int64_t)1 << 20)
#define MAX_PAD ((int64_t)1 << 30)

/* Product of d[from..to), saturating at INT64_MAX; -1 if a dim is negative. */
static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) {
    if (d[i] < 0) return -1;
    if (d[i] == 0) p = 0;
  }
  for (int i = from; i < to && p; i++) p = p > INT64_MAX / d[i] ? INT64_MAX : p * d[i];
  return p;
}

static int64_t numel(const shp *s) { return prod(s->dims, 0, s->rank); }

static void set_out(sctx *c, lb_dtype t, int rank, const int64_t *dims) {
  c->out[0].present = 1;
  c->out[0].dtype = t;
  c->out[0].rank = rank;
  for (int i = 0; i < rank; i++) c->out[0].dims[i] = dims[i];
}

static int need_rank(sctx *c, int k, int rank) {
  if (c->in[k].rank != rank)
    return fail(c, "input[%d]: expected rank %d, got %d", k, rank, c->in[k].rank);
  return 0;
}

static int need_dtype(sctx *c, int k, lb_dtype t) {
  if (c->in[k].dtype != t)
    return fail(c, "input[%d]: expected dtype %s, got %s", k, lb_dtype_name(t),
                lb_dtype_name(c->in[k].dtype));
  return 0;
}

/* Dtypes the elementwise arithmetic kernels handle. */
static int arith_dtype(lb_dtype t) {
  return t == LB_DTYPE_F32 || t == LB_DTYPE_F64 || t == LB_DTYPE_I64 || t == LB_DTYPE_I32 ||
         t == LB_DTYPE_I16 || t == LB_DTYPE_I8 || t == LB_DTYPE_U8;
}

static int need_arith(sctx *c, int k) {
  if (!arith_dtype(c->in[k].dtype))
    return fail(c, "input[%d]: dtype %s is not supported", k, lb_dtype_name(c->in[k].dtype));
  return 0;
}

/* Data movement copies whole bytes per element. */
static int need_bytes(sctx *c, int k) {
  if (lb_dtype_bits(c->in[k].dtype) < 8)
    return fail(c, "input[%d]: sub-byte dtype %s is not supported", k,
                lb_dtype_name(c->in[k].dtype));
  return 0;
}

/* Normalizes axis into [0, r) (or [0, r] when inclusive); -1 if out of range. */
static int64_t norm_axis(int64_t axis, int r, int inclusive) {
  int64_t hi = inclusive ? r : r - 1;
  if (axis < 0) axis += r;
  return (axis < 0 || axis > hi) ? -1 : axis;
}

static int axis_attr(sctx *c, int r, int inclusive) {
  int64_t ax = norm_axis(c->a->axis, r, inclusive);
  if (ax < 0)
    return fail(c, "axis %lld is out of range for rank %d", (long long)c->a->axis, r);
  c->a->axis = ax;
  return 0;
}

/* Only fp32 kernels implement the fused epilogue. */
static int check_act(sctx *c) {
  if (c->a->act != LB_ACT_NONE && c->out[0].dtype != LB_DTYPE_F32)
    return fail(c, "fused activation needs f32, got %s", lb_dtype_name(c->out[0].dtype));
  if ((unsigned)c->a->act > LB_ACT_CLIP) return fail(c, "unknown fused activation %d", c->a->act);
  return 0;
}

/* ---- elementwise ------------------------------------------------------------------------ */

static int r_unary_f32(sctx *c) {
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  set_out(c, c->in[0].dtype, c->in[0].rank, c->in[0].dims);
  return 0;
}

static int r_unary_arith(sctx *c) {
  LB_TRY(need_arith(c, 0));
  set_out(c, c->in[0].dtype, c->in[0].rank, c->in[0].dims);
  return 0;
}

static int r_binary(sctx *c) {
  const shp *x = &c->in[0], *y = &c->in[1];
  char b1[128], b2[128];
  LB_TRY(need_arith(c, 0));
  if (x->dtype != y->dtype)
    return fail(c, "input[1]: dtype %s does not match input[0] dtype %s", lb_dtype_name(y->dtype),
                lb_dtype_name(x->dtype));
  int r = x->rank > y->rank ? x->rank : y->rank;
  int64_t d[LB_MAX_RANK];
  for (int i = 0; i < r; i++) {
    int ix = x->rank - r + i, iy = y->rank - r + i;
    int64_t dx = ix >= 0 ? x->dims[ix] : 1, dy = iy >= 0 ? y->dims[iy] : 1;
    if (dx != dy && dx != 1 && dy != 1)
      return fail(c, "inputs are not broadcastable: %s and %s", sstr(x, b1, sizeof b1),
                  sstr(y, b2, sizeof b2));
    d[i] = dx == 1 ? dy : dx;
  }
  set_out(c, x->dtype, r, d);
  return check_act(c);
}

/* ---- conv and pooling ------------------------------------------------------------------- */

/* Checks the spatial rank and canonicalizes strides, dilations and pads for ns dims. */
static int spatial_attrs(sctx *c, int ns) {
  lb_attrs *a = c->a;
  if (a->n_spatial && a->n_spatial != ns)
    return fail(c, "input[0]: expected rank %d for %d spatial dims, got %d", a->n_spatial + 2,
                a->n_spatial, ns + 2);
  a->n_spatial = ns;
  for (int i = 0; i < ns; i++) {
    if (a->strides[i] == 0) a->strides[i] = 1;
    if (a->dilations[i] == 0) a->dilations[i] = 1;
    if (a->strides[i] < 0 || a->dilations[i] < 0 || a->strides[i] > MAX_STRIDE ||
        a->dilations[i] > MAX_STRIDE)
      return fail(c, "stride %lld or dilation %lld on spatial dim %d is out of range",
                  (long long)a->strides[i], (long long)a->dilations[i], i);
    if (a->pads[i] < 0 || a->pads[ns + i] < 0 || a->pads[i] > MAX_PAD || a->pads[ns + i] > MAX_PAD)
      return fail(c, "pads %lld+%lld on spatial dim %d are out of range", (long long)a->pads[i],
                  (long long)a->pads[ns + i], i);
  }
  return 0;
}

static int spatial_rank(sctx *c) {
  int r = c->in[0].rank;
  if (r < 3 || r > 2 + LB_MAX_SPATIAL)
    return fail(c, "input[0]: expected rank 3 to %d (N, C, spatial...), got %d",
                2 + LB_MAX_SPATIAL, r);
  return 0;
}

/* Output size of one spatial dim; ceil_mode drops a last window that would start in the right
 * padding (ONNX and PyTorch rule). Returns -1 if the dilated kernel does not fit. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                          int ceil_mode) {
  int64_t eff = d * (k - 1) + 1, span = in + pb + pe;
  if (span < eff) return -1;
  if (!ceil_mode) return (span - eff) / s + 1;
  int64_t o = (span - eff + s - 1) / s + 1;
  if ((o - 1) * s >= in + pb) o--;
  return o;
}

static int spatial_out(sctx *c, int64_t *od, int ns, int ceil_mode) {
  const lb_attrs *a = c->a;
  for (int i = 0; i < ns; i++) {
    int64_t o = window_out(c->in[0].dims[2 + i], a->kernel[i], a->strides[i], a->dilations[i],
                           a->pads[i], a->pads[ns + i], ceil_mode);
    if (o < 0)
      return fail(c, "spatial dim %d: input size %lld with pads %lld+%lld is smaller than the "
                  "kernel %lld (dilation %lld)", i, (long long)c->in[0].dims[2 + i],
                  (long long)a->pads[i], (long long)a->pads[ns + i], (long long)a->kernel[i],
                  (long long)a->dilations[i]);
    od[2 + i] = o;
  }
  return 0;
}

static int conv_weights(sctx *c, int ns) {
  const shp *x = &c->in[0], *w = &c->in[1];
  lb_attrs *a = c->a;
  LB_TRY(need_rank(c, 1, x->rank));
  if (a->group == 0) a->group = 1;
  if (a->group < 0) return fail(c, "group %lld must be positive", (long long)a->group);
  if (x->dims[1] % a->group || w->dims[1] != x->dims[1] / a->group)
    return fail(c, "input[1]: weight has %lld input channels x %lld groups, but input[0] has "
                "%lld channels", (long long)w->dims[1], (long long)a->group,
                (long long)x->dims[1]);
  if (w->dims[0] % a->group)
    return fail(c, "input[1]: %lld output channels are not divisible by group %lld",
                (long long)w->dims[0], (long long)a->group);
  for (int i = 0; i < ns; i++) {
    int64_t k = w->dims[2 + i];
    if (k < 1) return fail(c, "input[1]: kernel dim %d is empty", i);
    if (a->kernel[i] && a->kernel[i] != k)
      return fail(c, "kernel_shape[%d] = %lld does not match the weight's %lld", i,
                  (long long)a->kernel[i], (long long)k);
    a->kernel[i] = k;
  }
  return 0;
}

static int same_shape(sctx *c, int k, const shp *want) {
  char b1[128], b2[128];
  const shp *s = &c->in[k];
  int ok = s->rank == want->rank && s->dtype == want->dtype;
  for (int i = 0; ok && i < s->rank; i++) ok = s->dims[i] == want->dims[i];
  if (!ok)
    return fail(c, "input[%d]: expected %s, got %s", k, sstr(want, b1, sizeof b1),
                sstr(s, b2, sizeof b2));
  return 0;
}

static int bias_vector(sctx *c, int k, int64_t len) {
  if (!c->in[k].present) return 0;
  shp want = {.present = 1, .dtype = LB_DTYPE_F32, .rank = 1, .dims = {len}};
  return same_shape(c, k, &want);
}

static int r_conv(sctx *c) {
  LB_TRY(spatial_rank(c));
  int ns = c->in[0].rank - 2;
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  LB_TRY(need_dtype(c, 1, LB_DTYPE_F32));
  LB_TRY(spatial_attrs(c, ns));
  LB_TRY(conv_weights(c, ns));
  int64_t od[LB_MAX_RANK] = {c->in[0].dims[0], c->in[1].dims[0]};
  LB_TRY(spatial_out(c, od, ns, 0));
  LB_TRY(bias_vector(c, 2, od[1]));
  set_out(c, LB_DTYPE_F32, ns + 2, od);
  if (c->n->n_in > 3 && c->in[3].present) LB_TRY(same_shape(c, 3, &c->out[0]));
  return check_act(c);
}

static int r_pool(sctx *c) {
  LB_TRY(spatial_rank(c));
  int ns = c->in[0].rank - 2;
  lb_dtype t = c->in[0].dtype;
  int max = c->n->op == LB_OP_MAX_POOL;
  if (!(t == LB_DTYPE_F32 || (max && (t == LB_DTYPE_U8 || t == LB_DTYPE_I8))))
    return fail(c, "input[0]: dtype %s is not supported", lb_dtype_name(t));
  LB_TRY(spatial_attrs(c, ns));
  for (int i = 0; i < ns; i++)
    if (c->a->kernel[i] < 1 || c->a->kernel[i] > MAX_DIM)
      return fail(c, "kernel_shape[%d] = %lld is out of range", i, (long long)c->a->kernel[i]);
  int64_t od[LB_MAX_RANK] = {c->in[0].dims[0], c->in[0].dims[1]};
  LB_TRY(spatial_out(c, od, ns, c->a->ceil_mode));
  set_out(c, t, ns + 2, od);
  return 0;
}

static int r_global_avg_pool(sctx *c) {
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  if (c->in[0].rank < 3)
    return fail(c, "input[0]: expected rank >= 3 (N, C, spatial...), got %d", c->in[0].rank);
  int64_t od[LB_MAX_RANK];
  for (int i = 0; i < c->in[0].rank; i++) od[i] = i < 2 ? c->in[0].dims[i] : 1;
  set_out(c, LB_DTYPE_F32, c->in[0].rank, od);
  return 0;
}

/* ---- matrix products -------------------------------------------------------------------- */

static int r_gemm(sctx *c) {
  const shp *A = &c->in[0], *B = &c->in[1];
  const lb_attrs *a = c->a;
  char b1[128], b2[128];
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  LB_TRY(need_dtype(c, 1, LB_DTYPE_F32));
  LB_TRY(need_rank(c, 0, 2));
  LB_TRY(need_rank(c, 1, 2));
  int64_t M = A->dims[a->trans_a ? 1 : 0], K = A->dims[a->trans_a ? 0 : 1];
  int64_t Kb = B->dims[a->trans_b ? 1 : 0], N = B->dims[a->trans_b ? 0 : 1];
  if (K != Kb)
    return fail(c, "inner dims do not match: A %s (trans_a=%d), B %s (trans_b=%d)",
                sstr(A, b1, sizeof b1), a->trans_a, sstr(B, b2, sizeof b2), a->trans_b);
  int64_t od[2] = {M, N};
  set_out(c, LB_DTYPE_F32, 2, od);
  if (c->n->n_in > 2 && c->in[2].present) {
    const shp *C = &c->in[2];
    LB_TRY(need_dtype(c, 2, LB_DTYPE_F32));
    int ok = C->rank <= 2;
    for (int i = 0; ok && i < C->rank; i++) {
      int64_t want = od[2 - C->rank + i];
      ok = C->dims[i] == 1 || C->dims[i] == want;
    }
    if (!ok)
      return fail(c, "input[2]: %s does not broadcast to [%lld,%lld]", sstr(C, b1, sizeof b1),
                  (long long)M, (long long)N);
  }
  if (c->n->n_in > 3 && c->in[3].present) LB_TRY(same_shape(c, 3, &c->out[0]));
  return check_act(c);
}

static int r_matmul(sctx *c) {
  const shp *A = &c->in[0], *B = &c->in[1];
  char b1[128], b2[128];
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  LB_TRY(need_dtype(c, 1, LB_DTYPE_F32));
  if (A->rank < 1 || B->rank < 1) return fail(c, "matmul operands must have rank >= 1");
  int64_t K = A->dims[A->rank - 1], Kb = B->dims[B->rank >= 2 ? B->rank - 2 : 0];
  if (K != Kb)
    return fail(c, "inner dims do not match: %s x %s", sstr(A, b1, sizeof b1),
                sstr(B, b2, sizeof b2));
  int ba = A->rank > 2 ? A->rank - 2 : 0, bb = B->rank > 2 ? B->rank - 2 : 0;
  int r = ba > bb ? ba : bb, orank = r + (A->rank >= 2) + (B->rank >= 2);
  if (orank > LB_MAX_RANK) return fail(c, "output rank %d exceeds %d", orank, LB_MAX_RANK);
  int64_t od[LB_MAX_RANK];
  for (int i = 0; i < r; i++) {
    int ia = ba - r + i, ib = bb - r + i;
    int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return fail(c, "batch dims are not broadcastable: %s x %s", sstr(A, b1, sizeof b1),
                  sstr(B, b2, sizeof b2));
    od[i] = da == 1 ? db : da;
  }
  int k = r;
  if (A->rank >= 2) od[k++] = A->dims[A->rank - 2];
  if (B->rank >= 2) od[k++] = B->dims[B->rank - 1];
  set_out(c, LB_DTYPE_F32, orank, od);
  return check_act(c);
}

/* ---- normalization, softmax, reduction -------------------------------------------------- */

static int r_batchnorm(sctx *c) {
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  if (c->in[0].rank < 2)
    return fail(c, "input[0]: expected rank >= 2 (N, C, ...), got %d", c->in[0].rank);
  for (int k = 1; k < 5; k++) LB_TRY(bias_vector(c, k, c->in[0].dims[1]));
  set_out(c, LB_DTYPE_F32, c->in[0].rank, c->in[0].dims);
  return 0;
}

static int r_softmax(sctx *c) {
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  if (c->in[0].rank < 1) return fail(c, "input[0]: expected rank >= 1, got 0");
  LB_TRY(axis_attr(c, c->in[0].rank, 0));
  set_out(c, LB_DTYPE_F32, c->in[0].rank, c->in[0].dims);
  return 0;
}

/* Normalizes c->a->axes[0..n_axes) against rank r, rejecting out-of-range and duplicates. */
static int norm_axes(sctx *c, int r, unsigned char *mark) {
  memset(mark, 0, LB_MAX_RANK);
  if (c->a->n_axes < 0 || c->a->n_axes > r)
    return fail(c, "%d axes given for rank %d", c->a->n_axes, r);
  for (int i = 0; i < c->a->n_axes; i++) {
    int64_t ax = norm_axis(c->a->axes[i], r, 0);
    if (ax < 0)
      return fail(c, "axis %lld is out of range for rank %d", (long long)c->a->axes[i], r);
    if (mark[ax]) return fail(c, "axis %lld is repeated", (long long)c->a->axes[i]);
    mark[ax] = 1;
    c->a->axes[i] = ax;
  }
  return 0;
}

static int r_reduce_mean(sctx *c) {
  const shp *x = &c->in[0];
  unsigned char mark[LB_MAX_RANK];
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  if (c->a->n_axes == 0) {
    c->a->n_axes = x->rank;
    for (int i = 0; i < x->rank; i++) c->a->axes[i] = i;
  }
  LB_TRY(norm_axes(c, x->rank, mark));
  int64_t od[LB_MAX_RANK];
  int r = 0;
  for (int i = 0; i < x->rank; i++) {
    if (!mark[i])
      od[r++] = x->dims[i];
    else if (c->a->keepdims)
      od[r++] = 1;
  }
  set_out(c, LB_DTYPE_F32, r, od);
  return 0;
}

/* ---- data movement ---------------------------------------------------------------------- */

static int r_identity(sctx *c) {
  set_out(c, c->in[0].dtype, c->in[0].rank, c->in[0].dims);
  return 0;
}

static int r_concat(sctx *c) {
  const shp *x = &c->in[0];
  char b1[128], b2[128];
  if (x->rank < 1) return fail(c, "input[0]: cannot concatenate scalars");
  LB_TRY(need_bytes(c, 0));
  LB_TRY(axis_attr(c, x->rank, 0));
  int64_t od[LB_MAX_RANK], ax = c->a->axis;
  memcpy(od, x->dims, sizeof od);
  od[ax] = 0;
  for (uint32_t k = 0; k < c->n->n_in; k++) {
    const shp *s = &c->in[k];
    if (!s->present) return fail(c, "input[%u] is absent", k);
    int ok = s->rank == x->rank && s->dtype == x->dtype;
    for (int i = 0; ok && i < x->rank; i++) ok = i == ax || s->dims[i] == x->dims[i];
    if (!ok)
      return fail(c, "input[%u]: %s does not match input[0] %s outside axis %lld", k,
                  sstr(s, b1, sizeof b1), sstr(x, b2, sizeof b2), (long long)ax);
    od[ax] += s->dims[ax];
  }
  set_out(c, x->dtype, x->rank, od);
  return 0;
}

static int r_flatten(sctx *c) {
  const shp *x = &c->in[0];
  LB_TRY(axis_attr(c, x->rank, 1));
  int64_t od[2] = {prod(x->dims, 0, (int)c->a->axis), prod(x->dims, (int)c->a->axis, x->rank)};
  set_out(c, x->dtype, 2, od);
  return 0;
}

/* The importer sets the output value's shape; the rule keeps it and checks the count. */
static int r_reshape(sctx *c) {
  char b1[128], b2[128];
  shp *o = &c->out[0];
  o->dtype = c->in[0].dtype;
  if (numel(o) != numel(&c->in[0]))
    return fail(c, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                sstr(&c->in[0], b1, sizeof b1), (long long)numel(&c->in[0]),
                sstr(o, b2, sizeof b2), (long long)numel(o));
  return 0;
}

static int r_transpose(sctx *c) {
  const shp *x = &c->in[0];
  unsigned char mark[LB_MAX_RANK];
  LB_TRY(need_bytes(c, 0));
  if (c->a->n_axes == 0) {
    c->a->n_axes = x->rank;
    for (int i = 0; i < x->rank; i++) c->a->axes[i] = x->rank - 1 - i;
  }
  if (c->a->n_axes != x->rank)
    return fail(c, "perm has %d entries for rank %d", c->a->n_axes, x->rank);
  LB_TRY(norm_axes(c, x->rank, mark));
  int64_t od[LB_MAX_RANK];
  for (int i = 0; i < x->rank; i++) od[i] = x->dims[c->a->axes[i]];
  set_out(c, x->dtype, x->rank, od);
  return 0;
}

static int r_squeeze(sctx *c) {
  const shp *x = &c->in[0];
  unsigned char mark[LB_MAX_RANK];
  if (c->a->n_axes == 0)
    for (int i = 0; i < x->rank; i++)
      if (x->dims[i] == 1) c->a->axes[c->a->n_axes++] = i;
  LB_TRY(norm_axes(c, x->rank, mark));
  int64_t od[LB_MAX_RANK];
  int r = 0;
  for (int i = 0; i < x->rank; i++) {
    if (!mark[i])
      od[r++] = x->dims[i];
    else if (x->dims[i] != 1)
      return fail(c, "cannot squeeze axis %d of size %lld", i, (long long)x->dims[i]);
  }
  set_out(c, x->dtype, r, od);
  return 0;
}

static int r_unsqueeze(sctx *c) {
  const shp *x = &c->in[0];
  unsigned char mark[LB_MAX_RANK];
  int r = x->rank + c->a->n_axes;
  if (c->a->n_axes < 1) return fail(c, "unsqueeze needs at least one axis");
  if (r > LB_MAX_RANK) return fail(c, "output rank %d exceeds %d", r, LB_MAX_RANK);
  LB_TRY(norm_axes(c, r, mark));
  int64_t od[LB_MAX_RANK];
  for (int i = 0, k = 0; i < r; i++) od[i] = mark[i] ? 1 : x->dims[k++];
  set_out(c, x->dtype, r, od);
  return 0;
}

static int r_pad(sctx *c) {
  const shp *x = &c->in[0];
  const lb_attrs *a = c->a;
  int r = x->rank;
  LB_TRY(need_bytes(c, 0));
  if ((unsigned)a->pad_mode > LB_PAD_EDGE) return fail(c, "unknown pad mode %d", a->pad_mode);
  int64_t od[LB_MAX_RANK];
  for (int i = 0; i < r; i++) {
    int64_t d = x->dims[i], pb = a->pads[i], pe = a->pads[r + i];
    if (pb < -MAX_DIM || pb > MAX_DIM || pe < -MAX_DIM || pe > MAX_DIM)
      return fail(c, "axis %d: pads %lld+%lld are out of range", i, (long long)pb, (long long)pe);
    od[i] = d + pb + pe;
    if (od[i] < 0)
      return fail(c, "axis %d: pads %lld+%lld leave a negative size", i, (long long)pb,
                  (long long)pe);
    if (a->pad_mode == LB_PAD_REFLECT && (pb > d - 1 || pe > d - 1) && (pb > 0 || pe > 0))
      return fail(c, "axis %d: reflect pads %lld+%lld need a dim larger than %lld, got %lld", i,
                  (long long)pb, (long long)pe, (long long)(pb > pe ? pb : pe), (long long)d);
    if (a->pad_mode == LB_PAD_EDGE && d == 0 && (pb > 0 || pe > 0))
      return fail(c, "axis %d: edge padding of an empty dim", i);
  }
  set_out(c, x->dtype, r, od);
  return 0;
}

static int64_t load_index(const void *p, lb_dtype t, int64_t i) {
  return t == LB_DTYPE_I64 ? ((const int64_t *)p)[i] : ((const int32_t *)p)[i];
}

static int r_gather(sctx *c) {
  const shp *x = &c->in[0], *ix = &c->in[1];
  if (x->rank < 1) return fail(c, "input[0]: cannot gather from a scalar");
  LB_TRY(need_bytes(c, 0));
  if (ix->dtype != LB_DTYPE_I64 && ix->dtype != LB_DTYPE_I32)
    return fail(c, "input[1]: indices must be i64 or i32, got %s", lb_dtype_name(ix->dtype));
  LB_TRY(axis_attr(c, x->rank, 0));
  int ax = (int)c->a->axis, r = x->rank - 1 + ix->rank;
  if (r > LB_MAX_RANK) return fail(c, "output rank %d exceeds %d", r, LB_MAX_RANK);
  int64_t od[LB_MAX_RANK], d = x->dims[ax];
  int k = 0;
  for (int i = 0; i < ax; i++) od[k++] = x->dims[i];
  for (int i = 0; i < ix->rank; i++) od[k++] = ix->dims[i];
  for (int i = ax + 1; i < x->rank; i++) od[k++] = x->dims[i];
  for (int64_t i = 0, n = ix->data ? numel(ix) : 0; i < n; i++) {
    int64_t v = load_index(ix->data, ix->dtype, i);
    if (v < -d || v >= d)
      return fail(c, "input[1]: index %lld is out of range for axis %d of size %lld",
                  (long long)v, ax, (long long)d);
  }
  set_out(c, x->dtype, r, od);
  return 0;
}

static int r_shape(sctx *c) {
  int r = c->in[0].rank;
  int64_t s = c->a->start, e = c->a->end;
  if (s < 0) s += r;
  if (e != INT64_MAX && e < 0) e += r;
  s = s < 0 ? 0 : (s > r ? r : s);
  e = e < 0 ? 0 : (e > r ? r : e);
  c->a->start = s;
  c->a->end = e;
  int64_t len = e > s ? e - s : 0;
  set_out(c, LB_DTYPE_I64, 1, &len);
  return 0;
}

/* ---- quantization ----------------------------------------------------------------------- */

/* Scale and zero point: per tensor (one element) or per axis (1-D of the axis' size). */
static int quant_params(sctx *c) {
  const shp *x = &c->in[0], *s = &c->in[1], *z = &c->in[2];
  char b1[128], b2[128];
  LB_TRY(need_dtype(c, 1, LB_DTYPE_F32));
  if (s->rank > 1) return fail(c, "input[1]: scale must be a scalar or 1-D, got rank %d", s->rank);
  if (numel(s) != 1) {
    LB_TRY(axis_attr(c, x->rank, 0));
    if (s->rank != 1 || s->dims[0] != x->dims[c->a->axis])
      return fail(c, "input[1]: %lld scales for axis %lld of size %lld", (long long)numel(s),
                  (long long)c->a->axis, (long long)x->dims[c->a->axis]);
  }
  if (c->n->n_in > 2 && z->present && (z->rank != s->rank || numel(z) != numel(s)))
    return fail(c, "input[2]: zero point %s does not match scale %s", sstr(z, b1, sizeof b1),
                sstr(s, b2, sizeof b2));
  return 0;
}

static int quant_dtype(lb_dtype t) {
  return t == LB_DTYPE_U8 || t == LB_DTYPE_I8 || t == LB_DTYPE_I16 || t == LB_DTYPE_I32;
}

static int r_quantize(sctx *c) {
  LB_TRY(need_dtype(c, 0, LB_DTYPE_F32));
  LB_TRY(quant_params(c));
  lb_dtype t = LB_DTYPE_U8;
  if (c->n->n_in > 2 && c->in[2].present) t = c->in[2].dtype;
  if (!quant_dtype(t)) return fail(c, "input[2]: zero point dtype %s is not supported",
                                   lb_dtype_name(t));
  set_out(c, t, c->in[0].rank, c->in[0].dims);
  return 0;
}

static int r_dequantize(sctx *c) {
  lb_dtype t = c->in[0].dtype;
  if (!quant_dtype(t)) return fail(c, "input[0]: dtype %s is not supported", lb_dtype_name(t));
  LB_TRY(quant_params(c));
  if (c->n->n_in > 2 && c->in[2].present) LB_TRY(need_dtype(c, 2, t));
  set_out(c, LB_DTYPE_F32, c->in[0].rank, c->in[0].dims);
  return 0;
}

/* ---- the table -------------------------------------------------------------------------- */

static const rule_fn rules[LB_OP_COUNT] = {
    [LB_OP_CONV] = r_conv,
    [LB_OP_GEMM] = r_gemm,
    [LB_OP_MATMUL] = r_matmul,
    [LB_OP_ADD] = r_binary,
    [LB_OP_SUB] = r_binary,
    [LB_OP_MUL] = r_binary,
    [LB_OP_DIV] = r_binary,
    [LB_OP_RELU] = r_unary_arith,
    [LB_OP_LEAKY_RELU] = r_unary_f32,
    [LB_OP_CLIP] = r_unary_arith,
    [LB_OP_SIGMOID] = r_unary_f32,
    [LB_OP_TANH] = r_unary_f32,
    [LB_OP_HARD_SIGMOID] = r_unary_f32,
    [LB_OP_HARD_SWISH] = r_unary_f32,
    [LB_OP_SOFTMAX] = r_softmax,
    [LB_OP_MAX_POOL] = r_pool,
    [LB_OP_AVG_POOL] = r_pool,
    [LB_OP_GLOBAL_AVG_POOL] = r_global_avg_pool,
    [LB_OP_BATCHNORM] = r_batchnorm,
    [LB_OP_CONCAT] = r_concat,
    [LB_OP_FLATTEN] = r_flatten,
    [LB_OP_RESHAPE] = r_reshape,
    [LB_OP_TRANSPOSE] = r_transpose,
    [LB_OP_SQUEEZE] = r_squeeze,
    [LB_OP_UNSQUEEZE] = r_unsqueeze,
    [LB_OP_PAD] = r_pad,
    [LB_OP_GATHER] = r_gather,
    [LB_OP_IDENTITY] = r_identity,
    [LB_OP_SHAPE] = r_shape,
    [LB_OP_REDUCE_MEAN] = r_reduce_mean,
    [LB_OP_QUANTIZE] = r_quantize,
    [LB_OP_DEQUANTIZE] = r_dequantize,
};

/* Rejects negative dims and sizes beyond the sanity limits. */
static int check_size(sctx *c, const char *role, uint32_t k, const shp *s) {
  char b[160];
  if (s->rank < 0 || s->rank > LB_MAX_RANK)
    return fail(c, "%s[%u]: rank %d is out of range", role, k, s->rank);
  for (int i = 0; i < s->rank; i++)
    if (s->dims[i] < 0 || s->dims[i] > MAX_DIM)
      return fail(c, "%s[%u]: dim %d of %s is out of range", role, k, i, sstr(s, b, sizeof b));
  if (numel(s) > MAX_NUMEL)
    return fail(c, "%s[%u]: %s has too many elements", role, k, sstr(s, b, sizeof b));
  return 0;
}

/* Quantized integer forms (compiler/quant.h, interp_int.c): conv/gemm/matmul/avg pools/
 * reduce_mean on i8/u8 activations with quantization parameters (i8/u8 weights, i32 bias), and add/sub/mul with a fused activation.
 * Shapes follow the f32 rule; the output keeps the activation dtype. */
static int int_rule(sctx *c, rule_fn f) {
  lb_op op = c->n->op;
  lb_dtype t = c->in[0].dtype;
  int pool = op == LB_OP_GLOBAL_AVG_POOL || op == LB_OP_AVG_POOL || op == LB_OP_REDUCE_MEAN;
  int mac = op == LB_OP_CONV || op == LB_OP_GEMM || op == LB_OP_MATMUL || pool;
  int ew = (op == LB_OP_ADD || op == LB_OP_SUB || op == LB_OP_MUL) && c->a->act != LB_ACT_NONE;
  int table = op == LB_OP_LEAKY_RELU || op == LB_OP_SIGMOID || op == LB_OP_TANH ||
              op == LB_OP_HARD_SIGMOID || op == LB_OP_HARD_SWISH; /* any 8-bit out */
  ew |= table;
  if (!(t == LB_DTYPE_I8 || t == LB_DTYPE_U8) || !(mac || ew)) return -1;
  if (c->g->values[c->n->in[0]].q.n == 0) return -1; /* plain integers: not a quantized form */
  shp in[64];
  memcpy(in, c->in, sizeof in); /* callers pass 64 slots, absent ones zeroed */
  for (uint32_t k = 0; k < c->n->n_in && k < 64; k++) {
    lb_dtype d = in[k].dtype;
    int want32 = k == 2 && op != LB_OP_ADD && op != LB_OP_SUB && op != LB_OP_MUL;
    /* binary layers (quant.h lb_binary_node): packed b1 weights of a conv or gemm; packed
     * i4/u4/i2/u2 weight constants of a conv, gemm or matmul (quant.h lb_subbyte_weight) */
    int sub = d == LB_DTYPE_I4 || d == LB_DTYPE_U4 || d == LB_DTYPE_I2 || d == LB_DTYPE_U2;
    int packed = k == 1 && (op == LB_OP_CONV || op == LB_OP_GEMM) &&
             (d == LB_DTYPE_B1 || (sub && in[k].data));
    packed |= k == 1 && op == LB_OP_MATMUL && sub && in[k].data;
    if (in[k].present && !packed &&
        (want32 ? d != LB_DTYPE_I32 : !(d == LB_DTYPE_I8 || d == LB_DTYPE_U8)))
      return -1; /* not an integer form: the f32 rule reports the dtype */
    in[k].dtype = LB_DTYPE_F32;
    in[k].data = NULL;
  }
  sctx d = *c;
  d.in = in;
  lb_dtype preset = c->out[0].dtype; /* an int32 accumulator output stays int32 */
  LB_TRY(f(&d));
  c->out[0].dtype = preset == LB_DTYPE_I32 && mac && !pool ? preset : t;
  if (table && (preset == LB_DTYPE_I8 || preset == LB_DTYPE_U8)) c->out[0].dtype = preset;
  return 0;
}

/* Checks arity and required inputs, then runs the op's rule on in[] (out[0] pre-set for
 * reshape). The attributes are canonicalized in *a. */
static int run_rule(const lb_graph *g, uint32_t id, lb_attrs *a, const shp *in, shp *out,
                    lb_diag *diag) {
  const lb_node *n = &g->nodes[id];
  const lb_op_info *info = lb_op_get(n->op);
  sctx c = {g, id, n, a, in, out, diag};
  if ((int)n->n_in < info->min_in || (int)n->n_in > info->max_in)
    return fail(&c, "expected %d to %d inputs, got %u", info->min_in, info->max_in, n->n_in);
  if ((int)n->n_out != info->n_out)
    return fail(&c, "expected %d outputs, got %u", info->n_out, n->n_out);
  for (int k = 0; k < info->min_in; k++)
    if (!in[k].present) return fail(&c, "input[%d] is required", k);
  if (!rules[n->op]) return fail(&c, "no shape rule for op %s", info->name);
  for (uint32_t k = 0; k < n->n_in; k++)
    if (in[k].present) LB_TRY(check_size(&c, "input", k, &in[k]));
  int irc = int_rule(&c, rules[n->op]);
  if (irc > 0) return irc;
  if (irc < 0) LB_TRY(rules[n->op](&c));
  return check_size(&c, "output", 0, &out[0]);
}

int lb_infer_node(lb_graph *g, uint32_t id, lb_diag *diag) {
  LB_ASSERT(id < g->n_nodes);
  lb_node *n = &g->nodes[id];
  shp in[64], out[1];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  if (n->n_in > 64 || n->n_out != 1)
    return lb_node_err(g, id, diag, "unsupported arity: %u inputs, %u outputs", n->n_in,
                       n->n_out);
  for (uint32_t k = 0; k < n->n_in; k++) {
    if (n->in[k] == LB_NONE) continue;
    const lb_value *v = &g->values[n->in[k]];
    in[k] = (shp){1, v->dtype, v->rank, {0}, v->data};
    memcpy(in[k].dims, v->dims, sizeof v->dims);
  }
  lb_value *ov = &g->values[n->out[0]];
  out[0] = (shp){1, ov->dtype, ov->rank, {0}, NULL};
  memcpy(out[0].dims, ov->dims, sizeof ov->dims);
  lb_attrs a = n->attr;
  LB_TRY(run_rule(g, id, &a, in, out, diag));
  n->attr = a;
  ov->dtype = out[0].dtype;
  ov->rank = out[0].rank;
  memcpy(ov->dims, out[0].dims, sizeof ov->dims);
  return 0;
}

int lb_infer_shapes(lb_graph *g, lb_diag *diag) {
  for (uint32_t i = 0; i < g->n_nodes; i++) LB_TRY(lb_infer_node(g, i, diag));
  return 0;
}

int lb_shape_check(const lb_graph *g, uint32_t id, const lb_tensor *in, const lb_tensor *out,
                   lb_attrs *canon, lb_diag *diag) {
  const lb_node *n = &g->nodes[id];
  shp si[64], so[1];
  char b1[128], b2[128];
  memset(si, 0, sizeof si);
  if (n->n_in > 64 || n->n_out != 1)
    return lb_node_err(g, id, diag, "unsupported arity: %u inputs, %u outputs", n->n_in,
                       n->n_out);
  for (uint32_t k = 0; k < n->n_in; k++) {
    if (n->in[k] == LB_NONE) continue;
    if (in[k].rank < 0 || in[k].rank > LB_MAX_RANK)
      return lb_node_err(g, id, diag, "input[%u]: bad rank %d", k, in[k].rank);
    si[k] = (shp){1, in[k].dtype, in[k].rank, {0}, in[k].data};
    memcpy(si[k].dims, in[k].dims, sizeof in[k].dims);
  }
  if (out[0].rank < 0 || out[0].rank > LB_MAX_RANK)
    return lb_node_err(g, id, diag, "output[0]: bad rank %d", out[0].rank);
  so[0] = (shp){1, out[0].dtype, out[0].rank, {0}, NULL};
  memcpy(so[0].dims, out[0].dims, sizeof out[0].dims);
  *canon = n->attr;
  LB_TRY(run_rule(g, id, canon, si, so, diag));
  int ok = so[0].dtype == out[0].dtype && so[0].rank == out[0].rank;
  for (int i = 0; ok && i < so[0].rank; i++) ok = so[0].dims[i] == out[0].dims[i];
  if (!ok)
    return lb_node_err(g, id, diag, "output[0]: expected %s, got %s",
                       sstr(&so[0], b1, sizeof b1),
                       (lb_shape_str(b2, sizeof b2, out[0].dtype, out[0].rank, out[0].dims), b2));
  return 0;
}
