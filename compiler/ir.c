/* IR core: diagnostics, the allocator hook, the arena, dtype and op tables, graph building,
 * verification and compaction. Every allocation the graph makes goes through its arena or
 * through the growable id-indexed arrays, both released by lb_graph_free. */
#include "ir.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- diagnostics ------------------------------------------------------------------------ */

void lb_diag_clear(lb_diag *d) {
  d->set = 0;
  d->msg[0] = 0;
}

int lb_diag_err(lb_diag *d, int status, const char *fmt, ...) {
  if (d && !d->set) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    d->set = 1;
  }
  return status;
}

void lb_diag_prefix(lb_diag *d, const char *fmt, ...) {
  if (!d || !d->set) return;
  char pre[512], old[sizeof d->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  memcpy(old, d->msg, sizeof old);
  size_t np = strlen(pre);
  if (np + 2 >= sizeof d->msg) return;
  memcpy(d->msg, pre, np);
  memcpy(d->msg + np, ": ", 2);
  size_t room = sizeof d->msg - np - 3;
  size_t no = strlen(old);
  if (no > room) no = room;
  memcpy(d->msg + np + 2, old, no);
  d->msg[np + 2 + no] = 0;
}

void lb_assert_fail(const char *file, int line, const char *cond) {
  fprintf(stderr, "%s:%d: internal error: assertion failed: %s\n", file, line, cond);
  abort();
}

/* ---- allocation ------------------------------------------------------------------------- */

static lb_alloc_fn alloc_hook;

void lb_set_allocator(lb_alloc_fn fn) { alloc_hook = fn; }

void *lb_malloc(size_t n) {
  if (alloc_hook) return alloc_hook(NULL, n ? n : 1);
  return malloc(n ? n : 1);
}

void *lb_calloc(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return NULL;
  void *p = lb_malloc(count * size);
  if (p) memset(p, 0, (count && size) ? count * size : 1);
  return p;
}

void *lb_realloc(void *p, size_t n) {
  if (alloc_hook) return alloc_hook(p, n ? n : 1);
  return realloc(p, n ? n : 1);
}

void lb_free(void *p) {
  if (!p) return;
  if (alloc_hook)
    alloc_hook(p, 0);
  else
    free(p);
}

/* ---- arena ------------------------------------------------------------------------------ */

struct lb_arena_chunk {
  lb_arena_chunk *next;
  size_t cap;
  _Alignas(16) unsigned char data[];
};

void lb_arena_init(lb_arena *a) { memset(a, 0, sizeof *a); }

void lb_arena_free(lb_arena *a) {
  lb_arena_chunk *c = a->head;
  while (c) {
    lb_arena_chunk *next = c->next;
    lb_free(c);
    c = next;
  }
  lb_arena_init(a);
}

void *lb_arena_alloc(lb_arena *a, size_t n) {
  if (n > SIZE_MAX - 64) return NULL;
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->cap - a->used < n) {
    /* Big blobs (weights) get a chunk of their own so small allocations keep packing. */
    size_t cap = n > 65536 ? n : 65536;
    if (cap > SIZE_MAX - sizeof(lb_arena_chunk)) return NULL;
    lb_arena_chunk *c = lb_malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    if (a->head && n > 65536) {
      /* keep the current chunk as head so its free space is still used */
      c->next = a->head->next;
      a->head->next = c;
      memset(c->data, 0, n);
      return c->data;
    }
    c->next = a->head;
    a->head = c;
    a->used = 0;
    a->cap = cap;
  }
  void *p = a->head->data + a->used;
  a->used += n;
  memset(p, 0, n);
  return p;
}

void *lb_arena_array(lb_arena *a, size_t count, size_t sz) {
  if (sz && count > SIZE_MAX / sz) return NULL;
  return lb_arena_alloc(a, count * sz);
}

char *lb_arena_strdup(lb_arena *a, const char *s) {
  size_t n = strlen(s);
  char *p = lb_arena_alloc(a, n + 1);
  if (p) memcpy(p, s, n + 1);
  return p;
}

/* ---- dtypes ----------------------------------------------------------------------------- */

static const struct {
  const char *name;
  int bits, is_signed;
} dtype_table[] = {
#define X(e, s, bits, sign) [LB_DTYPE_##e] = {#s, bits, sign},
    LB_DTYPES(X)
#undef X
};
_Static_assert(sizeof dtype_table / sizeof dtype_table[0] == LB_DTYPE_COUNT, "dtype table");

const char *lb_dtype_name(lb_dtype t) {
  return (unsigned)t < LB_DTYPE_COUNT ? dtype_table[t].name : "?";
}

int lb_dtype_from_name(const char *s, lb_dtype *out) {
  for (int i = 0; i < LB_DTYPE_COUNT; i++)
    if (strcmp(s, dtype_table[i].name) == 0) {
      *out = (lb_dtype)i;
      return 0;
    }
  return -1;
}

int lb_dtype_bits(lb_dtype t) { return dtype_table[t].bits; }
int lb_dtype_is_signed(lb_dtype t) { return dtype_table[t].is_signed; }
int lb_dtype_is_float(lb_dtype t) { return t == LB_DTYPE_F32 || t == LB_DTYPE_F64; }

size_t lb_dtype_bytes(lb_dtype t, int64_t n) {
  if (n < 0) return SIZE_MAX;
  uint64_t bits = (uint64_t)lb_dtype_bits(t);
  if ((uint64_t)n > (UINT64_MAX - 7) / bits) return SIZE_MAX;
  uint64_t bytes = ((uint64_t)n * bits + 7) / 8;
  return bytes > SIZE_MAX / 2 ? SIZE_MAX : (size_t)bytes;
}

/* ---- ops -------------------------------------------------------------------------------- */

static const lb_op_info op_table[] = {
#define LB_OP(e, s, min_in, max_in, n_out) [LB_OP_##e] = {#s, min_in, max_in, n_out},
#include "ops.def"
#undef LB_OP
};
_Static_assert(sizeof op_table / sizeof op_table[0] == LB_OP_COUNT, "op table");

const lb_op_info *lb_op_get(lb_op op) {
  LB_ASSERT((unsigned)op < LB_OP_COUNT);
  return &op_table[op];
}

int lb_op_from_name(const char *s, lb_op *out) {
  for (int i = 0; i < LB_OP_COUNT; i++)
    if (strcmp(s, op_table[i].name) == 0) {
      *out = (lb_op)i;
      return 0;
    }
  return -1;
}

/* ---- graph ------------------------------------------------------------------------------ */

lb_graph *lb_graph_new(const char *name) {
  lb_graph *g = lb_calloc(1, sizeof *g);
  if (!g) return NULL;
  lb_arena_init(&g->arena);
  g->name = lb_arena_strdup(&g->arena, name ? name : "graph");
  if (!g->name) {
    lb_free(g);
    return NULL;
  }
  return g;
}

void lb_graph_free(lb_graph *g) {
  if (!g) return;
  lb_free(g->values);
  lb_free(g->nodes);
  lb_free(g->inputs);
  lb_free(g->outputs);
  lb_arena_free(&g->arena);
  lb_free(g);
}

/* Grows an id-indexed array so that one more element fits. */
static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem) {
  if (n < *cap) return 0;
  if (*cap >= UINT32_MAX / 2 - 1) return LB_ERR_NOMEM;
  uint32_t ncap = *cap ? *cap * 2 : 16;
  void *p = lb_realloc(*arr, (size_t)ncap * elem);
  if (!p) return LB_ERR_NOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

uint32_t lb_graph_add_value(lb_graph *g, const char *name, lb_dtype dtype, int rank,
                            const int64_t *dims) {
  LB_ASSERT(rank >= 0 && rank <= LB_MAX_RANK);
  if (grow((void **)&g->values, g->n_values, &g->cap_values, sizeof(lb_value))) return LB_NONE;
  lb_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->name = lb_arena_strdup(&g->arena, name ? name : "");
  if (!v->name) return LB_NONE;
  v->dtype = dtype;
  v->rank = rank;
  for (int i = 0; i < rank; i++) v->dims[i] = dims[i];
  v->producer = LB_NONE;
  v->q.axis = -1;
  return g->n_values++;
}

uint32_t lb_graph_add_const(lb_graph *g, const char *name, lb_dtype dtype, int rank,
                            const int64_t *dims, const void *data, size_t nbytes) {
  uint32_t id = lb_graph_add_value(g, name, dtype, rank, dims);
  if (id == LB_NONE) return LB_NONE;
  lb_value *v = &g->values[id];
  LB_ASSERT(nbytes == lb_dtype_bytes(dtype, lb_value_numel(v)));
  v->data = lb_arena_alloc(&g->arena, nbytes);
  if (!v->data) return LB_NONE;
  if (nbytes) memcpy(v->data, data, nbytes);
  v->nbytes = nbytes;
  return id;
}

uint32_t lb_graph_add_node(lb_graph *g, lb_op op, const char *name, const uint32_t *in,
                           uint32_t n_in, const uint32_t *out, uint32_t n_out) {
  if (grow((void **)&g->nodes, g->n_nodes, &g->cap_nodes, sizeof(lb_node))) return LB_NONE;
  lb_node *n = &g->nodes[g->n_nodes];
  memset(n, 0, sizeof *n);
  n->op = op;
  n->name = lb_arena_strdup(&g->arena, name ? name : "");
  n->onnx_op = "";
  n->in = lb_arena_array(&g->arena, n_in ? n_in : 1, sizeof(uint32_t));
  n->out = lb_arena_array(&g->arena, n_out ? n_out : 1, sizeof(uint32_t));
  if (!n->name || !n->in || !n->out) return LB_NONE;
  n->n_in = n_in;
  n->n_out = n_out;
  if (n_in) memcpy(n->in, in, n_in * sizeof *in);
  if (n_out) memcpy(n->out, out, n_out * sizeof *out);
  n->attr.alpha = 1.0f;
  n->attr.beta = 1.0f;
  for (uint32_t i = 0; i < n_out; i++) g->values[out[i]].producer = g->n_nodes;
  return g->n_nodes++;
}

int lb_graph_add_input(lb_graph *g, uint32_t value) {
  if (grow((void **)&g->inputs, g->n_inputs, &g->cap_inputs, sizeof(uint32_t)))
    return LB_ERR_NOMEM;
  g->inputs[g->n_inputs++] = value;
  g->values[value].is_input = 1;
  return 0;
}

int lb_graph_add_output(lb_graph *g, uint32_t value) {
  if (grow((void **)&g->outputs, g->n_outputs, &g->cap_outputs, sizeof(uint32_t)))
    return LB_ERR_NOMEM;
  g->outputs[g->n_outputs++] = value;
  g->values[value].is_output = 1;
  return 0;
}

uint32_t lb_graph_find_value(const lb_graph *g, const char *name) {
  for (uint32_t i = 0; i < g->n_values; i++)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return LB_NONE;
}

int64_t lb_value_numel(const lb_value *v) {
  int64_t n = 1;
  for (int i = 0; i < v->rank; i++) n *= v->dims[i];
  return n;
}

int64_t lb_tensor_numel(const lb_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i];
  return n;
}

/* ---- verification ----------------------------------------------------------------------- */

static int verify_value_ref(const lb_graph *g, uint32_t node, uint32_t v, const char *role,
                            uint32_t idx, lb_diag *diag) {
  if (v >= g->n_values)
    return lb_diag_err(diag, LB_ERR_INTERNAL, "node %u \"%s\": %s[%u] refers to value %u of %u",
                       node, g->nodes[node].name, role, idx, v, g->n_values);
  return 0;
}

int lb_graph_verify(const lb_graph *g, lb_diag *diag) {
  for (uint32_t i = 0; i < g->n_values; i++) {
    const lb_value *v = &g->values[i];
    if (v->rank < 0 || v->rank > LB_MAX_RANK || (unsigned)v->dtype >= LB_DTYPE_COUNT)
      return lb_diag_err(diag, LB_ERR_INTERNAL, "value %u \"%s\": bad rank or dtype", i, v->name);
    for (int d = 0; d < v->rank; d++)
      if (v->dims[d] < 0)
        return lb_diag_err(diag, LB_ERR_INTERNAL, "value %u \"%s\": negative dim", i, v->name);
    if (v->data && v->producer != LB_NONE)
      return lb_diag_err(diag, LB_ERR_INTERNAL, "value \"%s\": constant with a producer",
                         v->name);
    if (v->data && v->nbytes != lb_dtype_bytes(v->dtype, lb_value_numel(v)))
      return lb_diag_err(diag, LB_ERR_INTERNAL, "value \"%s\": data size does not match shape",
                         v->name);
    if (v->producer != LB_NONE && v->producer >= g->n_nodes)
      return lb_diag_err(diag, LB_ERR_INTERNAL, "value \"%s\": bad producer", v->name);
  }
  /* ready[v] = 1 once v is available: inputs and constants first, then node by node. */
  unsigned char *ready = lb_calloc(g->n_values ? g->n_values : 1, 1);
  if (!ready) return LB_ERR_NOMEM;
  int rc = 0;
  for (uint32_t i = 0; i < g->n_inputs && !rc; i++) {
    if (g->inputs[i] >= g->n_values)
      rc = lb_diag_err(diag, LB_ERR_INTERNAL, "graph input %u out of range", i);
    else
      ready[g->inputs[i]] = 1;
  }
  for (uint32_t i = 0; i < g->n_values; i++)
    if (g->values[i].data) ready[i] = 1;
  for (uint32_t n = 0; n < g->n_nodes && !rc; n++) {
    const lb_node *nd = &g->nodes[n];
    const lb_op_info *info = lb_op_get(nd->op);
    if ((int)nd->n_in < info->min_in || (int)nd->n_in > info->max_in ||
        (int)nd->n_out != info->n_out) {
      rc = lb_diag_err(diag, LB_ERR_INTERNAL, "node %u \"%s\" (%s): %u inputs, %u outputs", n,
                       nd->name, info->name, nd->n_in, nd->n_out);
      break;
    }
    for (uint32_t k = 0; k < nd->n_in && !rc; k++) {
      if (nd->in[k] == LB_NONE) {
        if ((int)k < info->min_in)
          rc = lb_diag_err(diag, LB_ERR_INTERNAL, "node %u \"%s\": required input %u absent", n,
                           nd->name, k);
        continue;
      }
      rc = verify_value_ref(g, n, nd->in[k], "input", k, diag);
      if (!rc && !ready[nd->in[k]])
        rc = lb_diag_err(diag, LB_ERR_INTERNAL,
                         "node %u \"%s\" (%s): input \"%s\" is used before it is produced", n,
                         nd->name, info->name, g->values[nd->in[k]].name);
    }
    for (uint32_t k = 0; k < nd->n_out && !rc; k++) {
      rc = verify_value_ref(g, n, nd->out[k], "output", k, diag);
      if (rc) break;
      const lb_value *v = &g->values[nd->out[k]];
      if (ready[nd->out[k]] || v->producer != n)
        rc = lb_diag_err(diag, LB_ERR_INTERNAL, "node %u \"%s\": output \"%s\" produced twice",
                         n, nd->name, v->name);
      ready[nd->out[k]] = 1;
    }
  }
  for (uint32_t i = 0; i < g->n_outputs && !rc; i++) {
    if (g->outputs[i] >= g->n_values || !ready[g->outputs[i]])
      rc = lb_diag_err(diag, LB_ERR_INTERNAL, "graph output %u is never produced", i);
  }
  lb_free(ready);
  return rc;
}

/* ---- compaction ------------------------------------------------------------------------- */

int lb_graph_compact(lb_graph *g) {
  /* Mark live values backwards from the outputs; a node is live if any output is. */
  unsigned char *live_v = lb_calloc(g->n_values ? g->n_values : 1, 1);
  unsigned char *live_n = lb_calloc(g->n_nodes ? g->n_nodes : 1, 1);
  uint32_t *vmap = lb_calloc(g->n_values ? g->n_values : 1, sizeof(uint32_t));
  int rc = LB_ERR_NOMEM;
  if (!live_v || !live_n || !vmap) goto done;
  for (uint32_t i = 0; i < g->n_outputs; i++) live_v[g->outputs[i]] = 1;
  for (uint32_t i = 0; i < g->n_inputs; i++) live_v[g->inputs[i]] = 1;
  for (uint32_t n = g->n_nodes; n-- > 0;) {
    lb_node *nd = &g->nodes[n];
    for (uint32_t k = 0; k < nd->n_out; k++)
      if (live_v[nd->out[k]]) live_n[n] = 1;
    if (!live_n[n]) continue;
    for (uint32_t k = 0; k < nd->n_out; k++) live_v[nd->out[k]] = 1;
    for (uint32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] != LB_NONE) live_v[nd->in[k]] = 1;
  }
  uint32_t nv = 0;
  for (uint32_t i = 0; i < g->n_values; i++) {
    vmap[i] = live_v[i] ? nv : LB_NONE;
    if (live_v[i]) g->values[nv++] = g->values[i];
  }
  uint32_t nn = 0;
  for (uint32_t n = 0; n < g->n_nodes; n++) {
    if (!live_n[n]) continue;
    lb_node *nd = &g->nodes[nn];
    *nd = g->nodes[n];
    for (uint32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] != LB_NONE) nd->in[k] = vmap[nd->in[k]];
    for (uint32_t k = 0; k < nd->n_out; k++) {
      nd->out[k] = vmap[nd->out[k]];
      g->values[nd->out[k]].producer = nn;
    }
    nn++;
  }
  g->n_values = nv;
  g->n_nodes = nn;
  for (uint32_t i = 0; i < g->n_inputs; i++) g->inputs[i] = vmap[g->inputs[i]];
  for (uint32_t i = 0; i < g->n_outputs; i++) g->outputs[i] = vmap[g->outputs[i]];
  rc = 0;
done:
  lb_free(live_v);
  lb_free(live_n);
  lb_free(vmap);
  return rc;
}
