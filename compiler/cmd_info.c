/* `lowbit info MODEL.onnx [--json]`: the graph's inputs and outputs, one row per layer (index,
 * name, op, output shape, parameters, MACs) and the totals. Parameters are the elements of a
 * layer's constant inputs (quantization scales and zero points excluded); a constant shared by
 * several layers is counted once in the totals. MACs count conv, gemm and matmul. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "onnx.h"

#define NAME_MAX_WIDTH 40

typedef struct layer_stats {
  int64_t params, macs;
} layer_stats;

typedef struct totals {
  int64_t params, macs, weight_bytes;
} totals;

static void usage(FILE *f) {
  fprintf(f,
          "usage: lowbit info MODEL.onnx [--json]\n"
          "\n"
          "Prints the model's inputs and outputs (dtype, shape) and one row per layer: index,\n"
          "name, op, output shape, parameter count and MACs (multiply-accumulates of conv, gemm\n"
          "and matmul), then the totals: parameters, MACs and bytes of weights.\n"
          "\n"
          "  --json      print the same as one JSON object\n"
          "  -h, --help  print this help\n");
}

/* Writes "[1,3,224,224]" into buf. */
static void shape_str(const lb_value *v, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < v->rank && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, d ? "," : "", v->dims[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* True for inputs that hold quantization parameters rather than weights. */
static int is_qparam_input(const lb_node *n, uint32_t slot) {
  return (n->op == LB_OP_QUANTIZE || n->op == LB_OP_DEQUANTIZE) && slot >= 1;
}

/* Multiply-accumulates of one layer: output elements times the reduction length. */
static int64_t node_macs(const lb_graph *g, const lb_node *n) {
  if (n->n_in == 0 || n->in[0] == LB_NONE) return 0;
  const lb_value *y = &g->values[n->out[0]];
  const lb_value *a = &g->values[n->in[0]];
  int64_t k = 0;
  switch (n->op) {
  case LB_OP_CONV: {
    const lb_value *w = &g->values[n->in[1]];
    k = w->rank >= 2 ? w->dims[1] : 0; /* input channels per group */
    for (int d = 2; d < w->rank; d++) k *= w->dims[d];
    break;
  }
  case LB_OP_GEMM:
    k = a->rank == 2 ? a->dims[n->attr.trans_a ? 0 : 1] : 0;
    break;
  case LB_OP_MATMUL:
    k = a->rank >= 1 ? a->dims[a->rank - 1] : 0;
    break;
  default:
    return 0;
  }
  return lb_value_numel(y) * k;
}

/* Fills s for node id; adds constants not seen before (seen[] per value) to t. */
static void layer(const lb_graph *g, uint32_t id, unsigned char *seen, layer_stats *s,
                  totals *t) {
  const lb_node *n = &g->nodes[id];
  s->params = 0;
  s->macs = node_macs(g, n);
  t->macs += s->macs;
  for (uint32_t i = 0; i < n->n_in; i++) {
    uint32_t v = n->in[i];
    if (v == LB_NONE || !g->values[v].data) continue;
    int64_t numel = lb_value_numel(&g->values[v]);
    if (!is_qparam_input(n, i)) s->params += numel;
    if (seen[v]) continue;
    seen[v] = 1;
    if (!is_qparam_input(n, i)) t->params += numel;
    t->weight_bytes += (int64_t)g->values[v].nbytes;
  }
}

static const char *node_name(const lb_node *n) { return n->name[0] ? n->name : "-"; }

/* Prints a name in at most w columns, keeping its tail (where torch puts the layer). */
static void print_name(const char *s, int w) {
  size_t len = strlen(s);
  if (len <= (size_t)w)
    printf("%-*s", w, s);
  else
    printf("..%s", s + len - (size_t)(w - 2));
}

static void print_io(const lb_graph *g, const char *title, const uint32_t *ids, uint32_t n) {
  char shape[256];
  printf("%s:\n", title);
  for (uint32_t i = 0; i < n; i++) {
    const lb_value *v = &g->values[ids[i]];
    shape_str(v, shape, sizeof shape);
    printf("  %-24s %s %s\n", v->name, lb_dtype_name(v->dtype), shape);
  }
}

/* "f32 [1,8,8,8]": a layer's output column. */
static void output_str(const lb_graph *g, const lb_node *n, char *buf, size_t len) {
  char shape[256];
  const lb_value *y = &g->values[n->out[0]];
  shape_str(y, shape, sizeof shape);
  snprintf(buf, len, "%s %s", lb_dtype_name(y->dtype), shape);
}

/* Column widths of the layer table: name (capped), op and output. */
static void widths(const lb_graph *g, int *wname, int *wop, int *wout) {
  char out[300];
  *wname = 4, *wop = 2, *wout = 6;
  for (uint32_t i = 0; i < g->n_nodes; i++) {
    const lb_node *n = &g->nodes[i];
    int len = (int)strlen(node_name(n));
    if (len > *wname) *wname = len > NAME_MAX_WIDTH ? NAME_MAX_WIDTH : len;
    len = (int)strlen(lb_op_get(n->op)->name);
    if (len > *wop) *wop = len;
    output_str(g, n, out, sizeof out);
    len = (int)strlen(out);
    if (len > *wout) *wout = len;
  }
}

static void print_table(const char *path, const lb_graph *g, unsigned char *seen) {
  char out[300];
  int wname, wop, wout;
  totals t = {0};
  widths(g, &wname, &wop, &wout);
  printf("model: %s (graph \"%s\", %" PRIu32 " layers)\n", path, g->name ? g->name : "",
         g->n_nodes);
  print_io(g, "inputs", g->inputs, g->n_inputs);
  print_io(g, "outputs", g->outputs, g->n_outputs);
  printf("\n%5s  %-*s  %-*s  %-*s %12s %14s\n", "#", wname, "name", wop, "op", wout, "output",
         "params", "MACs");
  for (uint32_t i = 0; i < g->n_nodes; i++) {
    const lb_node *n = &g->nodes[i];
    layer_stats s;
    layer(g, i, seen, &s, &t);
    output_str(g, n, out, sizeof out);
    printf("%5" PRIu32 "  ", i);
    print_name(node_name(n), wname);
    printf("  %-*s  %-*s %12" PRId64 " %14" PRId64 "\n", wop, lb_op_get(n->op)->name, wout, out,
           s.params, s.macs);
  }
  double kib = (double)t.weight_bytes / 1024.0;
  printf("\ntotal: %" PRIu32 " layers, %" PRId64 " parameters, %" PRId64 " MACs, %" PRId64
         " weight bytes (%.1f %s)\n",
         g->n_nodes, t.params, t.macs, t.weight_bytes, kib >= 1024 ? kib / 1024 : kib,
         kib >= 1024 ? "MiB" : "KiB");
}

/* Writes s as a JSON string literal. */
static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void json_shape(const lb_value *v) {
  printf("[");
  for (int d = 0; d < v->rank; d++) printf("%s%" PRId64, d ? "," : "", v->dims[d]);
  printf("]");
}

static void json_io(const lb_graph *g, const char *key, const uint32_t *ids, uint32_t n) {
  printf("  \"%s\": [", key);
  for (uint32_t i = 0; i < n; i++) {
    const lb_value *v = &g->values[ids[i]];
    printf("%s\n    {\"name\": ", i ? "," : "");
    json_str(v->name);
    printf(", \"dtype\": \"%s\", \"shape\": ", lb_dtype_name(v->dtype));
    json_shape(v);
    printf("}");
  }
  printf("\n  ],\n");
}

static void print_json(const char *path, const lb_graph *g, unsigned char *seen) {
  totals t = {0};
  printf("{\n  \"model\": ");
  json_str(path);
  printf(",\n  \"graph\": ");
  json_str(g->name ? g->name : "");
  printf(",\n");
  json_io(g, "inputs", g->inputs, g->n_inputs);
  json_io(g, "outputs", g->outputs, g->n_outputs);
  printf("  \"layers\": [");
  for (uint32_t i = 0; i < g->n_nodes; i++) {
    const lb_node *n = &g->nodes[i];
    layer_stats s;
    layer(g, i, seen, &s, &t);
    printf("%s\n    {\"index\": %" PRIu32 ", \"name\": ", i ? "," : "", i);
    json_str(n->name);
    printf(", \"op\": \"%s\", \"dtype\": \"%s\", \"shape\": ", lb_op_get(n->op)->name,
           lb_dtype_name(g->values[n->out[0]].dtype));
    json_shape(&g->values[n->out[0]]);
    printf(", \"params\": %" PRId64 ", \"macs\": %" PRId64 "}", s.params, s.macs);
  }
  printf("\n  ],\n  \"total\": {\"layers\": %" PRIu32 ", \"params\": %" PRId64
         ", \"macs\": %" PRId64 ", \"weight_bytes\": %" PRId64 "}\n}\n",
         g->n_nodes, t.params, t.macs, t.weight_bytes);
}

/* Loads the model, reporting a missing or unreadable file the way the shell would. */
static int load_model(const char *path, lb_graph **g) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "lowbit: %s: %s\n", path, strerror(errno));
    return LB_ERR_INPUT;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "lowbit: %s: Is a directory\n", path);
    return LB_ERR_INPUT;
  }
  lb_diag diag = {0};
  int rc = lb_onnx_load(path, g, &diag);
  if (rc == 0) return 0;
  if (strncmp(diag.msg, path, strlen(path)) == 0)
    fprintf(stderr, "lowbit: %s\n", diag.msg);
  else
    fprintf(stderr, "lowbit: %s: %s\n", path, diag.set ? diag.msg : "cannot import the model");
  return rc;
}

int lb_cmd_info(int argc, char **argv) {
  const char *path = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "lowbit info: unknown option '%s' (try 'lowbit info --help')\n", argv[i]);
      return 2;
    } else if (path) {
      fprintf(stderr, "lowbit info: unexpected argument '%s' (one model at a time)\n", argv[i]);
      return 2;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    fprintf(stderr, "lowbit info: no model given (try 'lowbit info --help')\n");
    return 2;
  }
  lb_graph *g = NULL;
  int rc = load_model(path, &g);
  if (rc != 0) return lb_exit_code(rc);
  unsigned char *seen = lb_calloc(g->n_values ? g->n_values : 1, 1);
  if (!seen) {
    lb_graph_free(g);
    fprintf(stderr, "lowbit: out of memory\n");
    return 1;
  }
  if (json)
    print_json(path, g, seen);
  else
    print_table(path, g, seen);
  lb_free(seen);
  lb_graph_free(g);
  return 0;
}
