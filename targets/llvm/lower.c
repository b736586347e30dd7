/* Whole-graph lowering: chooses a layout per 4-D value (NHWC after kernel-path convolutions,
 * inherited by layout-agnostic ops, canonical NCHW at graph edges and for order-dependent
 * ops), turns nodes plus layout conversions into steps, emits one internal function per step,
 * places intermediates in one workspace (memplan.c) and emits NAME_run / NAME_workspace_size
 * (and NAME_step for profiling). Invariant: a step reads only buffers in the layout it asked
 * for, and every workspace buffer is live from its producing step to its last reader. */
#include <stdio.h>
#include <string.h>

#include "lower.h"
#include "quant.h"

enum { LOC_WS, LOC_IN, LOC_OUT, LOC_CONST };
enum { REQ_ANY, REQ_CANON, REQ_NHWC };
enum { STEP_NODE, STEP_COPY };
#define MAX_ARGS 72

typedef struct buf {
  int loc, idx; /* graph input/output index for LOC_IN/LOC_OUT */
  int nhwc;     /* layout of the data in it */
  size_t size;
  int first, last;
  size_t offset;
  uint32_t value;
} buf;

typedef struct vinfo {
  int nhwc;        /* layout the producer writes */
  int buf;         /* buffer holding it in that layout (-1: constant) */
  int alt;         /* buffer holding a relayouted copy (-1: none yet) */
  LLVMValueRef gv; /* constant global */
} vinfo;

typedef struct step {
  int kind;
  uint32_t node;
  int src, dst;                       /* STEP_COPY buffers */
  int n_args, args[MAX_ARGS];         /* STEP_NODE: buffer per input (-1 absent), then outputs */
  int n_params, params[MAX_ARGS + 1]; /* buffers passed as pointers (constants are globals) */
  int scratch;                        /* buffer id or -1 */
  LLVMValueRef fn;
  char name[80];
  double flops;
} step;

typedef struct plan {
  const lb_graph *g;
  lb_diag *diag;
  vinfo *v;
  buf *b;
  int n_b, cap_b;
  step *s;
  int n_s, cap_s;
} plan;

static const int perm_nhwc[4] = {0, 2, 3, 1};

/* Memory identical in both layouts: the permutation only moves size-1 dims. */
static int layout_free(const lb_value *v) {
  return v->rank != 4 || v->dims[1] == 1 || (v->dims[2] == 1 && v->dims[3] == 1);
}

static int new_buf(plan *p, int loc, int idx, int nhwc, uint32_t value, size_t size) {
  if (p->n_b == p->cap_b) {
    int cap = p->cap_b ? 2 * p->cap_b : 64;
    buf *nb = lb_realloc(p->b, (size_t)cap * sizeof *nb);
    if (!nb) return -1;
    p->b = nb, p->cap_b = cap;
  }
  buf *b = &p->b[p->n_b];
  memset(b, 0, sizeof *b);
  b->loc = loc, b->idx = idx, b->nhwc = nhwc, b->value = value, b->size = size;
  b->first = b->last = p->n_s;
  return p->n_b++;
}

static step *new_step(plan *p, int kind) {
  if (p->n_s == p->cap_s) {
    int cap = p->cap_s ? 2 * p->cap_s : 64;
    step *ns = lb_realloc(p->s, (size_t)cap * sizeof *ns);
    if (!ns) return NULL;
    p->s = ns, p->cap_s = cap;
  }
  step *s = &p->s[p->n_s++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->scratch = -1;
  return s;
}

static void use(plan *p, int b) {
  if (b >= 0 && p->b[b].last < p->n_s - 1) p->b[b].last = p->n_s - 1;
}

static size_t vbytes(const lb_value *v) { return lb_dtype_bytes(v->dtype, lb_value_numel(v)); }

/* Ops that work on any 4-D layout and keep their input's layout (elementwise, pooling, pad). */
static int layout_follows_input(lb_op op) {
  switch (op) {
  case LB_OP_ADD:
  case LB_OP_SUB:
  case LB_OP_MUL:
  case LB_OP_DIV:
  case LB_OP_RELU:
  case LB_OP_LEAKY_RELU:
  case LB_OP_CLIP:
  case LB_OP_SIGMOID:
  case LB_OP_TANH:
  case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH:
  case LB_OP_MAX_POOL:
  case LB_OP_AVG_POOL:
  case LB_OP_GLOBAL_AVG_POOL:
  case LB_OP_BATCHNORM:
  case LB_OP_PAD:
  case LB_OP_IDENTITY: return 1;
  default: return 0;
  }
}

/* What layout op n needs for its input i. */
static int requirement(const lb_graph *g, const lb_node *n, uint32_t i) {
  if (layout_follows_input(n->op)) return REQ_ANY;
  switch (n->op) {
  case LB_OP_CONV:
    return (lb_conv_wants_nhwc(g, n) || lb_int_conv_nhwc(g, n)) && (i == 0 || i == 3) ? REQ_NHWC
                                                                                      : REQ_ANY;
  case LB_OP_CONCAT:
  case LB_OP_SHAPE:
  case LB_OP_TRANSPOSE:
  case LB_OP_REDUCE_MEAN:
  case LB_OP_QUANTIZE:
  case LB_OP_DEQUANTIZE: return REQ_ANY;
  default: return REQ_CANON;
  }
}

/* The layout op n writes its output in. */
static int out_layout(const plan *p, const lb_node *n) {
  const lb_graph *g = p->g;
  const lb_value *o = &g->values[n->out[0]];
  if (o->rank != 4) return 0;
  switch (n->op) {
  case LB_OP_CONV: return lb_conv_wants_nhwc(g, n) || lb_int_conv_nhwc(g, n);
  case LB_OP_CONCAT:
    for (uint32_t i = 0; i < n->n_in; i++)
      if (!p->v[n->in[i]].nhwc) return 0;
    return 1;
  default: break;
  }
  if (!layout_follows_input(n->op)) return 0;
  for (uint32_t i = 0; i < n->n_in && i < 2; i++) {
    const lb_value *x = &g->values[n->in[i]];
    if (x->rank == 4 && !x->data &&
        (n->op == LB_OP_GLOBAL_AVG_POOL || n->op == LB_OP_MAX_POOL || n->op == LB_OP_AVG_POOL ||
         n->op == LB_OP_PAD || !memcmp(x->dims, o->dims, sizeof o->dims)))
      return p->v[n->in[i]].nhwc;
  }
  return 0;
}

static int copy_step(plan *p, int src, int dst, uint32_t value) {
  step *s = new_step(p, STEP_COPY);
  if (!s) return LB_ERR_NOMEM;
  s->src = src, s->dst = dst, s->node = value;
  snprintf(s->name, sizeof s->name, "relayout_%u", value);
  use(p, src);
  p->b[dst].first = p->n_s - 1;
  use(p, dst);
  return 0;
}

/* The buffer holding value id in layout req (creating a relayout step if needed). */
static int input_buf(plan *p, uint32_t id, int req, int *out) {
  vinfo *vi = &p->v[id];
  const lb_value *v = &p->g->values[id];
  *out = vi->buf;
  if (v->data || req == REQ_ANY || layout_free(v) || vi->nhwc == (req == REQ_NHWC)) return 0;
  if (vi->alt < 0) {
    vi->alt = new_buf(p, LOC_WS, 0, req == REQ_NHWC, id, vbytes(v));
    if (vi->alt < 0) return LB_ERR_NOMEM;
    LB_TRY(copy_step(p, vi->buf, vi->alt, id));
  }
  *out = vi->alt;
  return 0;
}

static int graph_output_index(const lb_graph *g, uint32_t id, const char *taken) {
  for (uint32_t j = 0; j < g->n_outputs; j++)
    if (g->outputs[j] == id && !taken[j]) return (int)j;
  return -1;
}

/* Outputs of node k: in the graph's output buffer when the layout allows, else in the
 * workspace followed by a relayout copy into the output buffer. */
static int plan_outputs(plan *p, const lb_node *n, int *args, char *taken) {
  const lb_graph *g = p->g;
  for (uint32_t o = 0; o < n->n_out; o++) {
    uint32_t id = n->out[o];
    const lb_value *v = &g->values[id];
    int nhwc = o == 0 ? out_layout(p, n) : 0;
    int j = graph_output_index(g, id, taken);
    int direct = j >= 0 && (!nhwc || layout_free(v));
    p->v[id].nhwc = nhwc;
    p->v[id].buf = new_buf(p, direct ? LOC_OUT : LOC_WS, j, nhwc, id, vbytes(v));
    if (p->v[id].buf < 0) return LB_ERR_NOMEM;
    if (direct) taken[j] = 1;
    args[n->n_in + o] = p->v[id].buf;
  }
  return 0;
}

static int plan_node(plan *p, uint32_t k, char *taken) {
  const lb_node *n = &p->g->nodes[k];
  int args[MAX_ARGS];
  if (n->n_in + n->n_out > MAX_ARGS)
    return lb_diag_err(p->diag, LB_ERR_INPUT, "node %u: too many operands", k);
  for (uint32_t i = 0; i < n->n_in; i++) {
    args[i] = -1;
    if (n->in[i] != LB_NONE) LB_TRY(input_buf(p, n->in[i], requirement(p->g, n, i), &args[i]));
  }
  LB_TRY(plan_outputs(p, n, args, taken));
  step *s = new_step(p, STEP_NODE);
  if (!s) return LB_ERR_NOMEM;
  s->node = k;
  s->n_args = (int)(n->n_in + n->n_out);
  memcpy(s->args, args, (size_t)s->n_args * sizeof *args);
  snprintf(s->name, sizeof s->name, "%s", n->name && *n->name ? n->name : lb_op_get(n->op)->name);
  for (int i = 0; i < s->n_args; i++) use(p, args[i]);
  return 0;
}

/* Copies value id into graph output j in canonical layout (one copy: the copy step converts
 * from whatever layout the value's buffer has). */
static int output_copy(plan *p, uint32_t id, uint32_t j, char *taken) {
  int dst = new_buf(p, LOC_OUT, (int)j, 0, id, vbytes(&p->g->values[id]));
  if (dst < 0) return LB_ERR_NOMEM;
  LB_TRY(copy_step(p, p->v[id].buf, dst, id));
  snprintf(p->s[p->n_s - 1].name, sizeof p->s[0].name, "output_%u", j);
  taken[j] = 1;
  return 0;
}

/* Graph outputs not written directly (graph inputs, constants, duplicates): copies. */
static int plan_output_copies(plan *p, char *taken) {
  for (uint32_t j = 0; j < p->g->n_outputs; j++)
    if (!taken[j]) LB_TRY(output_copy(p, p->g->outputs[j], j, taken));
  return 0;
}

static int plan_graph(plan *p) {
  const lb_graph *g = p->g;
  p->v = lb_calloc(g->n_values ? g->n_values : 1, sizeof *p->v);
  char *taken = lb_calloc(g->n_outputs + 1, 1);
  if (!p->v || !taken) {
    lb_free(taken);
    return LB_ERR_NOMEM;
  }
  int rc = 0;
  for (uint32_t i = 0; i < g->n_values && !rc; i++) {
    p->v[i].alt = -1;
    p->v[i].buf = g->values[i].data ? new_buf(p, LOC_CONST, (int)i, 0, i, g->values[i].nbytes) : -1;
    if (g->values[i].data && p->v[i].buf < 0) rc = LB_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < g->n_inputs && !rc; i++) {
    uint32_t id = g->inputs[i];
    p->v[id].buf = new_buf(p, LOC_IN, (int)i, 0, id, vbytes(&g->values[id]));
    if (p->v[id].buf < 0) rc = LB_ERR_NOMEM;
  }
  for (uint32_t k = 0; k < g->n_nodes && !rc; k++) {
    rc = plan_node(p, k, taken);
    /* a value produced in NHWC that is also a graph output gets its copy right away */
    for (uint32_t o = 0; !rc && o < g->nodes[k].n_out; o++) {
      uint32_t id = g->nodes[k].out[o];
      int j = graph_output_index(g, id, taken);
      if (j >= 0) rc = output_copy(p, id, (uint32_t)j, taken);
    }
  }
  if (!rc) rc = plan_output_copies(p, taken);
  lb_free(taken);
  return rc;
}

/* ---- emission ------------------------------------------------------------------------------ */

static const lb_lower_fn lowerers[] = {
    [LB_OP_CONV] = lb_lower_conv,
    [LB_OP_GEMM] = lb_lower_gemm,
    [LB_OP_MATMUL] = lb_lower_gemm,
    [LB_OP_ADD] = lb_lower_elementwise,
    [LB_OP_SUB] = lb_lower_elementwise,
    [LB_OP_MUL] = lb_lower_elementwise,
    [LB_OP_DIV] = lb_lower_elementwise,
    [LB_OP_RELU] = lb_lower_elementwise,
    [LB_OP_LEAKY_RELU] = lb_lower_elementwise,
    [LB_OP_CLIP] = lb_lower_elementwise,
    [LB_OP_SIGMOID] = lb_lower_elementwise,
    [LB_OP_TANH] = lb_lower_elementwise,
    [LB_OP_HARD_SIGMOID] = lb_lower_elementwise,
    [LB_OP_HARD_SWISH] = lb_lower_elementwise,
    [LB_OP_SOFTMAX] = lb_lower_softmax,
    [LB_OP_MAX_POOL] = lb_lower_pool,
    [LB_OP_AVG_POOL] = lb_lower_pool,
    [LB_OP_GLOBAL_AVG_POOL] = lb_lower_reduce,
    [LB_OP_BATCHNORM] = lb_lower_batchnorm,
    [LB_OP_CONCAT] = lb_lower_concat,
    [LB_OP_FLATTEN] = lb_lower_reshape,
    [LB_OP_RESHAPE] = lb_lower_reshape,
    [LB_OP_TRANSPOSE] = lb_lower_transpose,
    [LB_OP_SQUEEZE] = lb_lower_reshape,
    [LB_OP_UNSQUEEZE] = lb_lower_reshape,
    [LB_OP_PAD] = lb_lower_pad,
    [LB_OP_GATHER] = lb_lower_gather,
    [LB_OP_IDENTITY] = lb_lower_elementwise,
    [LB_OP_SHAPE] = lb_lower_shape,
    [LB_OP_REDUCE_MEAN] = lb_lower_reduce,
    [LB_OP_QUANTIZE] = lb_lower_quant,
    [LB_OP_DEQUANTIZE] = lb_lower_quant,
};
_Static_assert(sizeof lowerers / sizeof lowerers[0] == LB_OP_COUNT, "one lowering per op");

static LLVMValueRef const_global(lb_lw *L, plan *p, uint32_t id) {
  vinfo *vi = &p->v[id];
  const lb_value *v = &p->g->values[id];
  if (!vi->gv) vi->gv = lb_const_blob(L, v->data, v->nbytes, "c");
  return vi->gv;
}

/* A view of buffer b (holding value id) whose base is param (or the constant's global). */
static lb_view buf_view(lb_lw *L, plan *p, int b, LLVMValueRef param) {
  const buf *bf = &p->b[b];
  const lb_value *v = &p->g->values[bf->value];
  lb_view w = {.dt = v->dtype, .rank = v->rank};
  memcpy(w.dims, v->dims, sizeof w.dims);
  lb_view_strides(&w, bf->nhwc && v->rank == 4 ? perm_nhwc : NULL);
  w.base = bf->loc == LOC_CONST ? const_global(L, p, bf->value) : param;
  return w;
}

/* A view of constant buffer b without materialising its data as a global. */
static lb_view buf_view_nodata(plan *p, int b) {
  const lb_value *v = &p->g->values[p->b[b].value];
  lb_view w = {.dt = v->dtype, .rank = v->rank};
  memcpy(w.dims, v->dims, sizeof w.dims);
  lb_view_strides(&w, NULL);
  w.base = NULL;
  return w;
}

static int add_param(step *s, int b, const plan *p) {
  if (b < 0 || p->b[b].loc == LOC_CONST) return -1;
  s->params[s->n_params] = b;
  return s->n_params++;
}

static double node_flops(const lb_graph *g, const lb_node *n) {
  const lb_value *y = &g->values[n->out[0]];
  if (n->op == LB_OP_CONV) {
    const lb_value *w = &g->values[n->in[1]];
    return 2.0 * (double)lb_value_numel(y) * (double)(lb_value_numel(w) / w->dims[0]);
  }
  if (n->op == LB_OP_GEMM || n->op == LB_OP_MATMUL) {
    const lb_value *a = &g->values[n->in[0]];
    int64_t k = a->rank == 1 ? a->dims[0]
                             : a->dims[a->rank - (n->op == LB_OP_GEMM && n->attr.trans_a ? 2 : 1)];
    return 2.0 * (double)lb_value_numel(y) * (double)k;
  }
  return (double)lb_value_numel(y);
}

double lb_graph_flops(const lb_graph *g) {
  double f = 0;
  for (uint32_t k = 0; k < g->n_nodes; k++)
    if (g->nodes[k].op == LB_OP_CONV || g->nodes[k].op == LB_OP_GEMM ||
        g->nodes[k].op == LB_OP_MATMUL)
      f += node_flops(g, &g->nodes[k]);
  return f;
}

static int emit_node_step(lb_lw *L, plan *p, int si, const char *fname) {
  step *s = &p->s[si];
  const lb_node *n = &p->g->nodes[s->node];
  int pos[MAX_ARGS];
  for (int i = 0; i < s->n_args; i++) pos[i] = add_param(s, s->args[i], p);
  LLVMValueRef fn = lb_fn_begin(L, fname, s->n_params + 1);
  lb_view views[MAX_ARGS];
  for (int i = 0; i < s->n_args; i++) {
    memset(&views[i], 0, sizeof views[i]);
    if (s->args[i] < 0) continue;
    if (i < (int)n->n_in && p->b[s->args[i]].loc == LOC_CONST &&
        lb_weights_packed(p->g, n, (uint32_t)i))
      views[i] = buf_view_nodata(p, s->args[i]); /* shape only: the kernel packs its own copy */
    else
      views[i] =
          buf_view(L, p, s->args[i], pos[i] >= 0 ? LLVMGetParam(fn, (unsigned)pos[i]) : NULL);
  }
  lb_op_args a = {.g = p->g,
                  .node = n,
                  .in = views,
                  .out = views + n->n_in,
                  .scratch = LLVMGetParam(fn, (unsigned)s->n_params),
                  .step_name = fname};
  int rc = (lb_int_node(p->g, s->node) ? lb_lower_int : lowerers[n->op])(L, &a);
  if (rc) {
    lb_diag_prefix(L->diag, "node %u \"%s\" (%s)", s->node, n->name,
                   n->onnx_op ? n->onnx_op : lb_op_get(n->op)->name);
    return rc;
  }
  LLVMBuildRetVoid(L->b);
  s->fn = fn;
  s->flops = node_flops(p->g, n);
  if (a.scratch_bytes) {
    int b = new_buf(p, LOC_WS, 0, 0, 0, a.scratch_bytes);
    if (b < 0) return LB_ERR_NOMEM;
    p->b[b].first = p->b[b].last = si;
    p->s[si].scratch = b;
  }
  return 0;
}

static int emit_copy_step(lb_lw *L, plan *p, int si, const char *fname) {
  step *s = &p->s[si];
  int ps = add_param(s, s->src, p), pd = add_param(s, s->dst, p);
  LLVMValueRef fn = lb_fn_begin(L, fname, s->n_params + 1);
  lb_view src = buf_view(L, p, s->src, ps >= 0 ? LLVMGetParam(fn, (unsigned)ps) : NULL);
  lb_view dst = buf_view(L, p, s->dst, LLVMGetParam(fn, (unsigned)pd));
  lb_emit_copy(L, &dst, &src);
  LLVMBuildRetVoid(L->b);
  s->fn = fn;
  return 0;
}

/* The pointer for buffer b inside NAME_run(in, out, ws). */
static LLVMValueRef buf_ptr(lb_lw *L, plan *p, int b, LLVMValueRef in, LLVMValueRef out,
                            LLVMValueRef ws) {
  if (b < 0) return LLVMConstNull(L->t_ptr);
  const buf *bf = &p->b[b];
  if (bf->loc == LOC_WS) return lb_gep(L, L->t_i8, ws, lb_c64(L, (int64_t)bf->offset));
  LLVMValueRef arr = bf->loc == LOC_IN ? in : out;
  return lb_load(L, L->t_ptr, lb_gep(L, L->t_ptr, arr, lb_c64(L, bf->idx)), 8);
}

static void call_step(lb_lw *L, plan *p, int si, LLVMValueRef in, LLVMValueRef out,
                      LLVMValueRef ws) {
  step *s = &p->s[si];
  LLVMValueRef args[MAX_ARGS + 2];
  LLVMTypeRef tys[MAX_ARGS + 2];
  for (int i = 0; i < s->n_params; i++)
    args[i] = buf_ptr(L, p, s->params[i], in, out, ws), tys[i] = L->t_ptr;
  args[s->n_params] = buf_ptr(L, p, s->scratch, in, out, ws);
  tys[s->n_params] = L->t_ptr;
  LLVMTypeRef fty = LLVMFunctionType(L->t_void, tys, (unsigned)s->n_params + 1, 0);
  LLVMBuildCall2(L->b, fty, s->fn, args, (unsigned)s->n_params + 1, "");
}

static LLVMValueRef entry_fn(lb_lw *L, const char *prefix, const char *suffix, LLVMTypeRef fty) {
  char name[256];
  snprintf(name, sizeof name, "%s_%s", prefix, suffix);
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, fty);
  const char *cpu = lb_spec_llvm_cpu(L->spec), *feat = lb_spec_llvm_features(L->spec);
  if (cpu && *cpu) LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", cpu);
  if (feat && *feat) LLVMAddTargetDependentFunctionAttr(fn, "target-features", feat);
  L->fn = fn;
  LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  return fn;
}

static void emit_entries(lb_lw *L, plan *p, const char *prefix, size_t ws, int profile) {
  LLVMTypeRef ws_ty = LLVMFunctionType(L->t_i64, NULL, 0, 0);
  entry_fn(L, prefix, "workspace_size", ws_ty);
  LLVMBuildRet(L->b, lb_c64(L, (int64_t)ws));
  LLVMTypeRef run_p[3] = {L->t_ptr, L->t_ptr, L->t_ptr};
  LLVMValueRef run = entry_fn(L, prefix, "run", LLVMFunctionType(L->t_i32, run_p, 3, 0));
  for (int si = 0; si < p->n_s; si++)
    call_step(L, p, si, LLVMGetParam(run, 0), LLVMGetParam(run, 1), LLVMGetParam(run, 2));
  LLVMBuildRet(L->b, lb_c32(L, 0));
  if (!profile) return;
  LLVMTypeRef step_p[4] = {L->t_i32, L->t_ptr, L->t_ptr, L->t_ptr};
  LLVMValueRef sf = entry_fn(L, prefix, "step", LLVMFunctionType(L->t_i32, step_p, 4, 0));
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(L->ctx, sf, "bad");
  LLVMValueRef sw = LLVMBuildSwitch(L->b, LLVMGetParam(sf, 0), bad, (unsigned)p->n_s);
  for (int si = 0; si < p->n_s; si++) {
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, sf, "s");
    LLVMAddCase(sw, lb_c32(L, si), bb);
    LLVMPositionBuilderAtEnd(L->b, bb);
    call_step(L, p, si, LLVMGetParam(sf, 1), LLVMGetParam(sf, 2), LLVMGetParam(sf, 3));
    LLVMBuildRet(L->b, lb_c32(L, 0));
  }
  LLVMPositionBuilderAtEnd(L->b, bad);
  LLVMBuildRet(L->b, lb_c32(L, -1));
}

static int place(plan *p, size_t *ws) {
  int n = 0;
  for (int i = 0; i < p->n_b; i++) n += p->b[i].loc == LOC_WS;
  lb_mem_req *r = lb_calloc(n ? (size_t)n : 1, sizeof *r);
  if (!r) return LB_ERR_NOMEM;
  for (int i = 0, k = 0; i < p->n_b; i++)
    if (p->b[i].loc == LOC_WS)
      r[k++] = (lb_mem_req){.size = p->b[i].size, .first = p->b[i].first, .last = p->b[i].last};
  int rc = lb_memplan(r, (size_t)n, 64, ws);
  for (int i = 0, k = 0; !rc && i < p->n_b; i++)
    if (p->b[i].loc == LOC_WS) p->b[i].offset = r[k++].offset;
  lb_free(r);
  return rc;
}

/* Only NAME_run, NAME_workspace_size and NAME_step are exported: kernels keep internal
 * linkage so objects of several models (sharing kernel shapes) link together. */
static void hide_helpers(lb_lw *L, const char *prefix) {
  size_t n = strlen(prefix);
  for (LLVMValueRef f = LLVMGetFirstFunction(L->mod); f; f = LLVMGetNextFunction(f)) {
    size_t len;
    const char *name = LLVMGetValueName2(f, &len);
    if (LLVMIsDeclaration(f)) continue;
    int entry = len > n && !strncmp(name, prefix, n) && name[n] == '_' &&
                (!strcmp(name + n, "_run") || !strcmp(name + n, "_workspace_size") ||
                 !strcmp(name + n, "_step"));
    if (!entry) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
}

static int lower_plan(lb_lw *L, plan *p, const lb_codegen_opts *o, lb_lowered *out) {
  const char *prefix = o && o->name ? o->name : "model";
  LB_TRY(plan_graph(p));
  int n_steps = p->n_s;
  for (int si = 0; si < n_steps; si++) {
    char fname[300];
    snprintf(fname, sizeof fname, "%s_step%d", prefix, si);
    LB_TRY(p->s[si].kind == STEP_NODE ? emit_node_step(L, p, si, fname)
                                      : emit_copy_step(L, p, si, fname));
  }
  size_t ws = 0;
  LB_TRY(place(p, &ws));
  emit_entries(L, p, prefix, ws, o && o->profile);
  hide_helpers(L, prefix);
  out->ws_size = ws;
  out->n_steps = p->n_s;
  out->names = lb_calloc(p->n_s ? (size_t)p->n_s : 1, sizeof *out->names);
  out->flops = lb_calloc(p->n_s ? (size_t)p->n_s : 1, sizeof *out->flops);
  if (!out->names || !out->flops) return LB_ERR_NOMEM;
  for (int si = 0; si < p->n_s; si++) {
    memcpy(out->names[si], p->s[si].name, sizeof out->names[si]);
    out->flops[si] = p->s[si].kind == STEP_NODE ? p->s[si].flops : 0;
  }
  return 0;
}

int lb_lower_graph(lb_lw *L, const lb_graph *g, const lb_codegen_opts *o, lb_lowered *out) {
  memset(out, 0, sizeof *out);
  plan p = {.g = g, .diag = L->diag};
  int rc = lower_plan(L, &p, o, out);
  if (rc == LB_ERR_NOMEM) lb_diag_err(L->diag, rc, "out of memory lowering the graph");
  if (rc) lb_lowered_free(out);
  lb_free(p.v), lb_free(p.b), lb_free(p.s);
  return rc;
}

void lb_lowered_free(lb_lowered *l) {
  lb_free(l->names), lb_free(l->flops);
  memset(l, 0, sizeof *l);
}
