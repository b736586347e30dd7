/* Textual IR: lb_graph_print writes a graph as text, lb_graph_parse reads it back (hand-written
 * lexer + recursive descent). Invariant: for a graph whose constants fit inline_limit,
 * print(parse(print(g))) == print(g) byte for byte. Which lb_attrs fields an op uses is said in
 * one place, op_fields[]; the printer prints exactly those and the parser accepts only those. */
#include "ir_text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the per-op attribute table --------------------------------------------------------- */

typedef enum {
  F_KERNEL, F_STRIDES, F_DILATIONS, F_PADS, F_GROUP, F_CEIL_MODE, F_COUNT_INCLUDE_PAD,
  F_TRANS_A, F_TRANS_B, F_ALPHA, F_BETA, F_CLIP_MIN, F_CLIP_MAX, F_PAD_VALUE, F_PAD_MODE,
  F_EPSILON, F_AXIS, F_LEGACY_2D, F_AXES, F_PERM, F_KEEPDIMS, F_START, F_END,
  F_ACT, F_ACT_MIN, F_ACT_MAX, F_REQUANT, F_COUNT
} field;

/* Printed in this order; the parser accepts any order. */
static const char *const field_names[] = {
    "kernel", "strides", "dilations", "pads", "group", "ceil_mode", "count_include_pad",
    "trans_a", "trans_b", "alpha", "beta", "clip_min", "clip_max", "pad_value", "pad_mode",
    "epsilon", "axis", "legacy_2d", "axes", "perm", "keepdims", "start", "end",
    "act", "act_min", "act_max", "requantize"};
_Static_assert(sizeof field_names / sizeof field_names[0] == F_COUNT, "field names");

#define B(f) (1u << F_##f)
#define SPATIAL (B(KERNEL) | B(STRIDES) | B(DILATIONS) | B(PADS))
#define EPILOGUE (B(ACT) | B(ACT_MIN) | B(ACT_MAX) | B(REQUANT))

/* op -> the lb_attrs fields it reads (ops.def comments say the same in prose). */
static const uint32_t op_fields[LB_OP_COUNT] = {
    [LB_OP_CONV] = SPATIAL | B(GROUP) | EPILOGUE,
    [LB_OP_GEMM] = B(TRANS_A) | B(TRANS_B) | B(ALPHA) | B(BETA) | EPILOGUE,
    [LB_OP_MATMUL] = EPILOGUE,
    [LB_OP_ADD] = EPILOGUE,
    [LB_OP_LEAKY_RELU] = B(ALPHA),
    [LB_OP_CLIP] = B(CLIP_MIN) | B(CLIP_MAX) | B(REQUANT),
    [LB_OP_RELU] = B(REQUANT), /* integer nodes: quant.h's method */
    [LB_OP_SUB] = B(REQUANT),
    [LB_OP_MUL] = B(REQUANT),
    [LB_OP_GLOBAL_AVG_POOL] = B(REQUANT),
    [LB_OP_HARD_SIGMOID] = B(ALPHA) | B(BETA),
    [LB_OP_SOFTMAX] = B(AXIS) | B(LEGACY_2D),
    [LB_OP_MAX_POOL] = SPATIAL | B(CEIL_MODE),
    [LB_OP_AVG_POOL] = SPATIAL | B(CEIL_MODE) | B(COUNT_INCLUDE_PAD) | B(REQUANT),
    [LB_OP_BATCHNORM] = B(EPSILON),
    [LB_OP_CONCAT] = B(AXIS),
    [LB_OP_FLATTEN] = B(AXIS),
    [LB_OP_TRANSPOSE] = B(PERM),
    [LB_OP_SQUEEZE] = B(AXES),
    [LB_OP_UNSQUEEZE] = B(AXES),
    [LB_OP_PAD] = B(PADS) | B(PAD_VALUE) | B(PAD_MODE),
    [LB_OP_GATHER] = B(AXIS),
    [LB_OP_SHAPE] = B(START) | B(END),
    [LB_OP_REDUCE_MEAN] = B(AXES) | B(KEEPDIMS),
    [LB_OP_QUANTIZE] = B(AXIS),
    [LB_OP_DEQUANTIZE] = B(AXIS),
};

static const char *const pad_mode_names[] = {"constant", "reflect", "edge"};
static const char *const act_names[] = {"none", "relu", "clip"};
/* attrs.requant (spec.h lb_requant), shown only for the integer methods */
static const char *const requant_names[] = {"none", "fp32", "fixed_point", "shift"};

/* The act bounds only mean something for clip, and act itself is noise when it is none. */
static int field_shown(const lb_node *nd, field k) {
  if (!(op_fields[nd->op] & (1u << k))) return 0;
  if (k == F_ACT) return nd->attr.act != LB_ACT_NONE;
  if (k == F_REQUANT) return nd->attr.requant >= 2 && nd->attr.requant < 4;
  if (k == F_ACT_MIN || k == F_ACT_MAX) return nd->attr.act == LB_ACT_CLIP;
  return 1;
}

/* conv/pool pads hold begins then ends per spatial dim; pad's hold them per input dim. */
static int pads_count(const lb_graph *g, const lb_node *nd) {
  if (nd->op != LB_OP_PAD) return 2 * nd->attr.n_spatial;
  if (nd->n_in < 1 || nd->in[0] >= g->n_values) return 0;
  return 2 * g->values[nd->in[0]].rank;
}

/* ---- printer ---------------------------------------------------------------------------- */

static int bare_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == '-' || c == '/';
}

static void print_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(f, "\\%c", *c);
    else if (*c < 0x20 || *c >= 0x7f)
      fprintf(f, "\\x%02x", *c);
    else
      fputc(*c, f);
  }
  fputc('"', f);
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Open-addressing map name -> value id (slots hold id+1, 0 = empty); capacity a power of 2. */
typedef struct {
  uint32_t *slot;
  uint32_t cap, n;
} name_map;

static uint32_t map_find(const name_map *m, const lb_graph *g, const char *name) {
  if (!m->cap) return LB_NONE;
  for (uint32_t i = (uint32_t)hash_str(name) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->slot[i]) return LB_NONE;
    if (strcmp(g->values[m->slot[i] - 1].name, name) == 0) return m->slot[i] - 1;
  }
}

static int map_put(name_map *m, const lb_graph *g, uint32_t id);

static int map_grow(name_map *m, const lb_graph *g) {
  name_map nm = {0};
  nm.cap = m->cap ? m->cap * 2 : 64;
  nm.slot = lb_calloc(nm.cap, sizeof *nm.slot);
  if (!nm.slot) return LB_ERR_NOMEM;
  for (uint32_t i = 0; i < m->cap; i++)
    if (m->slot[i]) map_put(&nm, g, m->slot[i] - 1);
  lb_free(m->slot);
  *m = nm;
  return 0;
}

/* Adds id under its name (the caller has checked the name is not present). */
static int map_put(name_map *m, const lb_graph *g, uint32_t id) {
  if ((m->n + 1) * 2 > m->cap) LB_TRY(map_grow(m, g));
  uint32_t i = (uint32_t)hash_str(g->values[id].name) & (m->cap - 1);
  while (m->slot[i]) i = (i + 1) & (m->cap - 1);
  m->slot[i] = id + 1;
  m->n++;
  return 0;
}

/* dup[id] = 1 when the value's name is empty or shared: such values print as "name#id" so the
 * text always names each value uniquely. NULL on OOM (callers then scan, slower but correct). */
static unsigned char *find_dups(const lb_graph *g) {
  name_map m = {0};
  unsigned char *dup = lb_calloc(g->n_values ? g->n_values : 1, 1);
  if (!dup) return NULL;
  for (uint32_t i = 0; i < g->n_values; i++) {
    uint32_t o = map_find(&m, g, g->values[i].name);
    if (o != LB_NONE) {
      dup[i] = dup[o] = 1;
    } else if (map_put(&m, g, i)) {
      lb_free(m.slot);
      lb_free(dup);
      return NULL;
    }
    if (!g->values[i].name[0]) dup[i] = 1;
  }
  lb_free(m.slot);
  return dup;
}

static int is_dup(const lb_graph *g, const unsigned char *dup, uint32_t id) {
  if (dup) return dup[id];
  const char *name = g->values[id].name;
  if (!name[0]) return 1;
  for (uint32_t i = 0; i < g->n_values; i++)
    if (i != id && strcmp(g->values[i].name, name) == 0) return 1;
  return 0;
}

typedef struct {
  FILE *f;
  const lb_graph *g;
  const unsigned char *dup;
  int inline_limit;
} printer;

static void print_ref(const printer *pr, uint32_t id) {
  if (id == LB_NONE || id >= pr->g->n_values) {
    fputs("_", pr->f);
    return;
  }
  const char *name = pr->g->values[id].name;
  fputc('%', pr->f);
  if (is_dup(pr->g, pr->dup, id)) {
    char buf[1100];
    snprintf(buf, sizeof buf, "%.1000s#%" PRIu32, name, id);
    print_quoted(pr->f, buf);
    return;
  }
  const char *c = name;
  while (*c && bare_char((unsigned char)*c)) c++;
  if (*c)
    print_quoted(pr->f, name);
  else
    fputs(name, pr->f);
}

static void print_i64s(FILE *f, const int64_t *v, int n) {
  fputc('[', f);
  for (int i = 0; i < n; i++) fprintf(f, "%s%" PRId64, i ? "," : "", v[i]);
  fputc(']', f);
}

static void print_quant(FILE *f, const lb_quant *q) {
  if (q->n == 0) return;
  if (q->axis < 0 && q->n == 1) {
    fprintf(f, " quant(scale=%.9g", q->scale[0]);
    if (q->zero_point) fprintf(f, ", zero_point=%" PRId32, q->zero_point[0]);
    fputc(')', f);
    return;
  }
  fprintf(f, " quant(axis=%d, scale=[", q->axis);
  for (uint32_t i = 0; i < q->n; i++) fprintf(f, "%s%.9g", i ? ", " : "", q->scale[i]);
  fputc(']', f);
  if (q->zero_point) {
    fputs(", zero_point=[", f);
    for (uint32_t i = 0; i < q->n; i++) fprintf(f, "%s%" PRId32, i ? ", " : "", q->zero_point[i]);
    fputc(']', f);
  }
  fputc(')', f);
}

static void print_type(FILE *f, const lb_value *v) {
  fputs(lb_dtype_name(v->dtype), f);
  print_i64s(f, v->dims, v->rank);
  print_quant(f, &v->q);
}

/* Element i of packed data as a printable number (sub-byte types sign-extended). */
static void print_elem(FILE *f, lb_dtype t, const void *data, int64_t i) {
  const unsigned char *b = data;
  float f32;
  double f64;
  int64_t i64;
  int32_t i32;
  int16_t i16;
  switch (t) {
  case LB_DTYPE_F32: memcpy(&f32, b + 4 * i, 4); fprintf(f, "%.9g", f32); return;
  case LB_DTYPE_F64: memcpy(&f64, b + 8 * i, 8); fprintf(f, "%.17g", f64); return;
  case LB_DTYPE_I64: memcpy(&i64, b + 8 * i, 8); fprintf(f, "%" PRId64, i64); return;
  case LB_DTYPE_I32: memcpy(&i32, b + 4 * i, 4); fprintf(f, "%" PRId32, i32); return;
  case LB_DTYPE_I16: memcpy(&i16, b + 2 * i, 2); fprintf(f, "%d", i16); return;
  case LB_DTYPE_I8: fprintf(f, "%d", (int8_t)b[i]); return;
  case LB_DTYPE_U8: fprintf(f, "%u", b[i]); return;
  case LB_DTYPE_BOOL: fprintf(f, "%d", b[i] != 0); return;
  default: break;
  }
  int bits = lb_dtype_bits(t);
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  int raw = (b[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
  if (lb_dtype_is_signed(t) && (raw & (1 << (bits - 1)))) raw -= 1 << bits;
  fprintf(f, "%d", raw);
}

static void print_data(const printer *pr, const lb_value *v) {
  int64_t n = lb_value_numel(v);
  if (pr->inline_limit >= 0 && n > pr->inline_limit) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < v->nbytes; i++) h = (h ^ ((const unsigned char *)v->data)[i]) * 1099511628211ull;
    fprintf(pr->f, " = digest(fnv1a=0x%016" PRIx64 ", elements=%" PRId64 ")", h, n);
    return;
  }
  fputs(" = [", pr->f);
  for (int64_t i = 0; i < n; i++) {
    if (i) fputs(", ", pr->f);
    print_elem(pr->f, v->dtype, v->data, i);
  }
  fputc(']', pr->f);
}

static void print_decl(const printer *pr, const char *kw, uint32_t id) {
  const lb_value *v = &pr->g->values[id];
  fprintf(pr->f, "  %s ", kw);
  print_ref(pr, id);
  fputs(": ", pr->f);
  print_type(pr->f, v);
  if (v->data) print_data(pr, v);
  fputc('\n', pr->f);
}

static void print_field(const printer *pr, const lb_node *nd, field k) {
  FILE *f = pr->f;
  const lb_attrs *a = &nd->attr;
  fprintf(f, "%s=", field_names[k]);
  switch (k) {
  case F_KERNEL: print_i64s(f, a->kernel, a->n_spatial); break;
  case F_STRIDES: print_i64s(f, a->strides, a->n_spatial); break;
  case F_DILATIONS: print_i64s(f, a->dilations, a->n_spatial); break;
  case F_PADS: print_i64s(f, a->pads, pads_count(pr->g, nd)); break;
  case F_AXES:
  case F_PERM: print_i64s(f, a->axes, a->n_axes); break;
  case F_GROUP: fprintf(f, "%" PRId64, a->group); break;
  case F_AXIS: fprintf(f, "%" PRId64, a->axis); break;
  case F_START: fprintf(f, "%" PRId64, a->start); break;
  case F_END: fprintf(f, "%" PRId64, a->end); break;
  case F_CEIL_MODE: fprintf(f, "%d", a->ceil_mode); break;
  case F_COUNT_INCLUDE_PAD: fprintf(f, "%d", a->count_include_pad); break;
  case F_TRANS_A: fprintf(f, "%d", a->trans_a); break;
  case F_TRANS_B: fprintf(f, "%d", a->trans_b); break;
  case F_LEGACY_2D: fprintf(f, "%d", a->legacy_2d); break;
  case F_KEEPDIMS: fprintf(f, "%d", a->keepdims); break;
  case F_ALPHA: fprintf(f, "%.9g", a->alpha); break;
  case F_BETA: fprintf(f, "%.9g", a->beta); break;
  case F_CLIP_MIN: fprintf(f, "%.9g", a->clip_min); break;
  case F_CLIP_MAX: fprintf(f, "%.9g", a->clip_max); break;
  case F_PAD_VALUE: fprintf(f, "%.9g", a->pad_value); break;
  case F_EPSILON: fprintf(f, "%.9g", a->epsilon); break;
  case F_ACT_MIN: fprintf(f, "%.9g", a->act_min); break;
  case F_ACT_MAX: fprintf(f, "%.9g", a->act_max); break;
  case F_PAD_MODE: fputs((unsigned)a->pad_mode < 3 ? pad_mode_names[a->pad_mode] : "?", f); break;
  case F_ACT: fputs((unsigned)a->act < 3 ? act_names[a->act] : "?", f); break;
  case F_REQUANT: fputs(requant_names[a->requant], f); break;
  case F_COUNT: LB_ASSERT(0);
  }
}

static void print_node(const printer *pr, const lb_node *nd) {
  fputs("  ", pr->f);
  for (uint32_t k = 0; k < nd->n_out; k++) {
    if (k) fputs(", ", pr->f);
    print_ref(pr, nd->out[k]);
    fputs(": ", pr->f);
    print_type(pr->f, &pr->g->values[nd->out[k]]);
  }
  fprintf(pr->f, " = %s(", lb_op_get(nd->op)->name);
  for (uint32_t k = 0; k < nd->n_in; k++) {
    if (k) fputs(", ", pr->f);
    print_ref(pr, nd->in[k]);
  }
  fputc(')', pr->f);
  int n = 0;
  for (int k = 0; k < F_COUNT; k++) {
    if (!field_shown(nd, (field)k)) continue;
    fputs(n++ ? ", " : " {", pr->f);
    print_field(pr, nd, (field)k);
  }
  if (n) fputc('}', pr->f);
  if (nd->name[0]) {
    fputs(" name=", pr->f);
    print_quoted(pr->f, nd->name);
  }
  fputc('\n', pr->f);
}

void lb_graph_print(const lb_graph *g, FILE *f, int inline_limit) {
  unsigned char *dup = find_dups(g);
  printer pr = {f, g, dup, inline_limit};
  fputs("graph ", f);
  print_quoted(f, g->name);
  fputs(" {\n", f);
  for (uint32_t i = 0; i < g->n_inputs; i++) print_decl(&pr, "input", g->inputs[i]);
  for (uint32_t i = 0; i < g->n_values; i++)
    if (g->values[i].data && !g->values[i].is_input) print_decl(&pr, "const", i);
  /* values nobody produces (a graph under construction): declared so the text stays whole */
  for (uint32_t i = 0; i < g->n_values; i++) {
    const lb_value *v = &g->values[i];
    if (!v->data && !v->is_input && v->producer == LB_NONE) print_decl(&pr, "value", i);
  }
  for (uint32_t n = 0; n < g->n_nodes; n++) print_node(&pr, &g->nodes[n]);
  for (uint32_t i = 0; i < g->n_outputs; i++) {
    fputs("  output ", f);
    print_ref(&pr, g->outputs[i]);
    fputc('\n', f);
  }
  fputs("}\n", f);
  lb_free(dup);
}

/* ---- lexer ------------------------------------------------------------------------------ */

typedef enum { T_EOF, T_IDENT, T_NUM, T_STR, T_REF, T_PUNCT } tok_kind;

typedef struct {
  tok_kind kind;
  const char *s; /* raw text (for T_STR and quoted T_REF: at the opening quote) */
  size_t n;
  int line, col;
} token;

typedef struct {
  const char *text, *file, *pos, *end;
  int line, col;
  token tok; /* the lookahead */
  lb_graph *g;
  name_map map;
  char *buf; /* decoded strings */
  size_t buf_cap;
  lb_diag *diag;
} parser;

static int perr_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr_at(parser *p, int line, int col, const char *fmt, ...) {
  char msg[800];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lb_diag_err(p->diag, LB_ERR_INPUT, "%s:%d:%d: error: %s", p->file, line, col, msg);
}
#define perr(p, t, ...) perr_at((p), (t)->line, (t)->col, __VA_ARGS__)

static int nomem(parser *p) {
  return lb_diag_err(p->diag, LB_ERR_NOMEM, "%s: out of memory while parsing", p->file);
}

static void advance_char(parser *p) {
  if (*p->pos == '\n') {
    p->line++;
    p->col = 1;
  } else {
    p->col++;
  }
  p->pos++;
}

static int is_ident_start(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static void skip_space(parser *p) {
  for (;;) {
    char c = *p->pos;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      advance_char(p);
    } else if (c == '#') { /* comment to end of line */
      while (*p->pos && *p->pos != '\n') advance_char(p);
    } else {
      return;
    }
  }
}

static int lex_string(parser *p) {
  advance_char(p); /* opening quote */
  while (*p->pos != '"') {
    if (!*p->pos || *p->pos == '\n')
      return perr(p, &p->tok, "unterminated string");
    if (*p->pos == '\\') advance_char(p);
    if (*p->pos) advance_char(p);
  }
  advance_char(p);
  return 0;
}

/* Reads the next token into p->tok. */
static int lex(parser *p) {
  skip_space(p);
  token *t = &p->tok;
  t->s = p->pos;
  t->line = p->line;
  t->col = p->col;
  unsigned char c = (unsigned char)*p->pos, c1 = c ? (unsigned char)p->pos[1] : 0;
  if (!c) {
    t->kind = T_EOF;
  } else if (is_ident_start(c)) {
    t->kind = T_IDENT;
    while (is_ident_start((unsigned char)*p->pos) || is_digit((unsigned char)*p->pos)) advance_char(p);
  } else if (is_digit(c) || ((c == '-' || c == '+' || c == '.') && c1 && (is_digit(c1) || c1 == '.' || c1 == 'i' || c1 == 'n'))) {
    t->kind = T_NUM;
    advance_char(p);
    for (;;) {
      char d = *p->pos, prev = p->pos[-1];
      int exp_sign = (d == '+' || d == '-') && (prev == 'e' || prev == 'E');
      if (!(is_ident_start((unsigned char)d) || is_digit((unsigned char)d) || d == '.' || exp_sign))
        break;
      advance_char(p);
    }
  } else if (c == '"') {
    t->kind = T_STR;
    LB_TRY(lex_string(p));
  } else if (c == '%') {
    t->kind = T_REF;
    advance_char(p);
    t->s = p->pos;
    if (*p->pos == '"') {
      LB_TRY(lex_string(p));
    } else {
      while (bare_char((unsigned char)*p->pos)) advance_char(p);
      if (p->pos == t->s) return perr(p, t, "expected a value name after '%%'");
    }
  } else if (strchr("()[]{},:=", c)) {
    t->kind = T_PUNCT;
    advance_char(p);
  } else {
    return perr(p, t, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
  }
  t->n = (size_t)(p->pos - t->s);
  return 0;
}

static int tok_is(const token *t, const char *s) {
  return (t->kind == T_PUNCT || t->kind == T_IDENT) && t->n == strlen(s) &&
         memcmp(t->s, s, t->n) == 0;
}

static const char *tok_desc(const token *t) {
  switch (t->kind) {
  case T_EOF: return "end of file";
  case T_IDENT: return "a word";
  case T_NUM: return "a number";
  case T_STR: return "a string";
  case T_REF: return "a value name";
  case T_PUNCT: return "punctuation";
  }
  return "?";
}

/* Consumes the punctuation or keyword s, or fails naming what was expected. */
static int expect(parser *p, const char *s) {
  if (!tok_is(&p->tok, s))
    return perr(p, &p->tok, "expected '%s', got %s '%.*s'", s, tok_desc(&p->tok),
                (int)(p->tok.n > 40 ? 40 : p->tok.n), p->tok.s);
  return lex(p);
}

static int accept(parser *p, const char *s, int *took) {
  *took = tok_is(&p->tok, s);
  return *took ? lex(p) : 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes a quoted string (at t->s) or a bare name into p->buf. */
static int tok_text(parser *p, const token *t) {
  if (t->n + 1 > p->buf_cap) {
    char *nb = lb_realloc(p->buf, t->n + 1);
    if (!nb) return nomem(p);
    p->buf = nb;
    p->buf_cap = t->n + 1;
  }
  if (t->s[0] != '"') {
    memcpy(p->buf, t->s, t->n);
    p->buf[t->n] = 0;
    return 0;
  }
  size_t o = 0;
  for (size_t i = 1; i + 1 < t->n; i++) {
    char c = t->s[i];
    if (c == '\\') {
      char e = t->s[++i];
      if (e == 'x' && i + 2 < t->n && hexval(t->s[i + 1]) >= 0 && hexval(t->s[i + 2]) >= 0) {
        c = (char)(hexval(t->s[i + 1]) * 16 + hexval(t->s[i + 2]));
        i += 2;
      } else if (e == '"' || e == '\\') {
        c = e;
      } else {
        return perr(p, t, "bad escape '\\%c' in string (use \\\" \\\\ or \\xHH)", e);
      }
      if (!c) return perr(p, t, "string contains a NUL byte");
    }
    p->buf[o++] = c;
  }
  p->buf[o] = 0;
  return 0;
}

/* ---- numbers ---------------------------------------------------------------------------- */

static int num_text(parser *p, const token *t, char *out, size_t cap) {
  int ok = t->kind == T_NUM ||
           (t->kind == T_IDENT && (tok_is(t, "inf") || tok_is(t, "nan")));
  if (!ok) return perr(p, t, "expected a number, got %s '%.*s'", tok_desc(t), (int)(t->n > 40 ? 40 : t->n), t->s);
  if (t->n + 1 > cap) return perr(p, t, "number too long");
  memcpy(out, t->s, t->n);
  out[t->n] = 0;
  return 0;
}

static int num_f64(parser *p, double *out, int single) {
  char s[64], *end;
  LB_TRY(num_text(p, &p->tok, s, sizeof s));
  errno = 0;
  if (single) {
    float f = strtof(s, &end);
    *out = f;
  } else {
    *out = strtod(s, &end);
  }
  if (*end || end == s) return perr(p, &p->tok, "malformed number '%s'", s);
  return lex(p);
}

static int num_f32(parser *p, float *out) {
  double d;
  LB_TRY(num_f64(p, &d, 1));
  *out = (float)d;
  return 0;
}

static int num_i64(parser *p, int64_t *out, int64_t lo, int64_t hi) {
  char s[64], *end;
  LB_TRY(num_text(p, &p->tok, s, sizeof s));
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end || end == s) return perr(p, &p->tok, "expected an integer, got '%s'", s);
  if (errno == ERANGE || v < lo || v > hi)
    return perr(p, &p->tok, "%s is out of range [%" PRId64 ", %" PRId64 "]", s, lo, hi);
  *out = v;
  return lex(p);
}

static int num_int(parser *p, int *out, int lo, int hi) {
  int64_t v;
  LB_TRY(num_i64(p, &v, lo, hi));
  *out = (int)v;
  return 0;
}

/* [a, b, ...] of integers into v (at most max entries). */
static int i64_list(parser *p, int64_t *v, int max, int *n, int64_t lo, int64_t hi) {
  token open = p->tok;
  int took;
  LB_TRY(expect(p, "["));
  *n = 0;
  LB_TRY(accept(p, "]", &took));
  if (took) return 0;
  for (;;) {
    if (*n >= max) return perr(p, &open, "list has more than %d entries", max);
    LB_TRY(num_i64(p, &v[(*n)++], lo, hi));
    LB_TRY(accept(p, ",", &took));
    if (!took) return expect(p, "]");
  }
}

/* ---- types, quantization, constant data ------------------------------------------------- */

typedef struct {
  lb_dtype dtype;
  int rank;
  int64_t dims[LB_MAX_RANK];
  int axis;
  uint32_t n_scale, n_zp;
  float *scale;   /* lb_malloc'd until copied into the graph */
  int32_t *zp;
  token at;       /* where the type starts, for errors */
} type_spec;

static void type_free(type_spec *ts) {
  lb_free(ts->scale);
  lb_free(ts->zp);
  ts->scale = NULL;
  ts->zp = NULL;
}

/* A number or [numbers] for quant(); single numbers become one-element lists. */
static int quant_list(parser *p, int is_scale, void **arr, uint32_t *n) {
  int took;
  LB_TRY(accept(p, "[", &took));
  uint32_t cap = 0;
  *n = 0;
  for (int first = 1;; first = 0) {
    if (took && first && tok_is(&p->tok, "]")) break;
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      void *na = lb_realloc(*arr, (size_t)cap * 4);
      if (!na) return nomem(p);
      *arr = na;
    }
    if (is_scale) {
      LB_TRY(num_f32(p, &((float *)*arr)[*n]));
    } else {
      int v;
      LB_TRY(num_int(p, &v, INT32_MIN, INT32_MAX));
      ((int32_t *)*arr)[*n] = v;
    }
    (*n)++;
    if (!took) return 0;
    int comma;
    LB_TRY(accept(p, ",", &comma));
    if (!comma) break;
  }
  return took ? expect(p, "]") : 0;
}

/* quant(axis=A, scale=S|[..], zero_point=Z|[..]) */
static int parse_quant(parser *p, type_spec *ts) {
  token at = p->tok;
  int seen_axis = 0, took;
  LB_TRY(expect(p, "("));
  do {
    token key = p->tok;
    if (key.kind != T_IDENT) return perr(p, &key, "expected axis, scale or zero_point");
    LB_TRY(lex(p));
    LB_TRY(expect(p, "="));
    if (tok_is(&key, "axis") && !seen_axis) {
      seen_axis = 1;
      LB_TRY(num_int(p, &ts->axis, -1, LB_MAX_RANK - 1));
    } else if (tok_is(&key, "scale") && !ts->scale) {
      LB_TRY(quant_list(p, 1, (void **)&ts->scale, &ts->n_scale));
    } else if (tok_is(&key, "zero_point") && !ts->zp) {
      LB_TRY(quant_list(p, 0, (void **)&ts->zp, &ts->n_zp));
    } else {
      return perr(p, &key, "unknown or repeated quant field '%.*s'", (int)key.n, key.s);
    }
    LB_TRY(accept(p, ",", &took));
  } while (took);
  LB_TRY(expect(p, ")"));
  if (!ts->scale || ts->n_scale == 0) return perr(p, &at, "quant() needs a non-empty scale");
  if (ts->zp && ts->n_zp != ts->n_scale)
    return perr(p, &at, "quant() has %u scales but %u zero points", ts->n_scale, ts->n_zp);
  if (ts->axis >= ts->rank) return perr(p, &at, "quant axis %d is not below rank %d", ts->axis, ts->rank);
  if (ts->axis >= 0 && ts->dims[ts->axis] != (int64_t)ts->n_scale)
    return perr(p, &at, "quant axis %d has %" PRId64 " channels but %u scales", ts->axis,
                ts->dims[ts->axis], ts->n_scale);
  return 0;
}

/* dtype[d0,d1,...] [quant(...)] */
static int parse_type(parser *p, type_spec *ts) {
  memset(ts, 0, sizeof *ts);
  ts->axis = -1;
  ts->at = p->tok;
  LB_TRY(tok_text(p, &p->tok));
  if (p->tok.kind != T_IDENT || lb_dtype_from_name(p->buf, &ts->dtype))
    return perr(p, &p->tok, "expected a dtype (f32, i8, u4, ...), got '%.*s'",
                (int)(p->tok.n > 40 ? 40 : p->tok.n), p->tok.s);
  LB_TRY(lex(p));
  token dims_at = p->tok;
  LB_TRY(i64_list(p, ts->dims, LB_MAX_RANK, &ts->rank, 0, INT64_MAX));
  int64_t numel = 1;
  for (int i = 0; i < ts->rank; i++) {
    if (ts->dims[i] && numel > (INT64_C(1) << 40) / ts->dims[i])
      return perr(p, &dims_at, "shape has too many elements");
    numel *= ts->dims[i];
  }
  if (tok_is(&p->tok, "quant")) {
    LB_TRY(lex(p));
    LB_TRY(parse_quant(p, ts));
  }
  return 0;
}

/* Stores number token value as element i of packed data of dtype t, range-checked. */
static int store_elem(parser *p, lb_dtype t, void *data, int64_t i) {
  unsigned char *b = data;
  if (t == LB_DTYPE_F32) {
    float f;
    LB_TRY(num_f32(p, &f));
    memcpy(b + 4 * i, &f, 4);
    return 0;
  }
  if (t == LB_DTYPE_F64) {
    double d;
    LB_TRY(num_f64(p, &d, 0));
    memcpy(b + 8 * i, &d, 8);
    return 0;
  }
  int bits = lb_dtype_bits(t);
  int64_t lo = 0, hi = 1, v;
  if (t == LB_DTYPE_I64) {
    lo = INT64_MIN, hi = INT64_MAX;
  } else if (t != LB_DTYPE_BOOL) {
    lo = lb_dtype_is_signed(t) ? -(INT64_C(1) << (bits - 1)) : 0;
    hi = lb_dtype_is_signed(t) ? (INT64_C(1) << (bits - 1)) - 1 : (INT64_C(1) << bits) - 1;
  }
  LB_TRY(num_i64(p, &v, lo, hi));
  if (bits >= 8) {
    uint64_t u = (uint64_t)v; /* little-endian host: the low bytes come first */
    memcpy(b + (size_t)i * (size_t)(bits / 8), &u, (size_t)bits / 8);
    return 0;
  }
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  b[bit / 8] |= (unsigned char)(((uint64_t)v & ((1u << bits) - 1)) << (bit % 8));
  return 0;
}

/* = [e0, e1, ...] for value id, exactly numel elements, into arena memory. */
static int parse_data(parser *p, uint32_t id) {
  lb_value *v = &p->g->values[id];
  int64_t n = lb_value_numel(v);
  if (tok_is(&p->tok, "digest"))
    return perr(p, &p->tok, "constant %%%s is printed as a digest of %" PRId64 " elements; "
                "print the graph with a larger inline_limit to parse it", v->name, n);
  /* every element takes at least one character: refuse before allocating for a huge shape */
  if (n > (int64_t)(p->end - p->pos))
    return perr(p, &p->tok, "constant %%%s has %" PRId64 " elements, more than the text holds",
                v->name, n);
  size_t nbytes = lb_dtype_bytes(v->dtype, n);
  void *data = lb_arena_alloc(&p->g->arena, nbytes ? nbytes : 1);
  if (!data) return nomem(p);
  token open = p->tok;
  int took;
  LB_TRY(expect(p, "["));
  int64_t i = 0;
  LB_TRY(accept(p, "]", &took));
  while (!took) {
    if (i >= n) return perr(p, &p->tok, "too many elements: the shape holds %" PRId64, n);
    LB_TRY(store_elem(p, v->dtype, data, i++));
    int comma;
    LB_TRY(accept(p, ",", &comma));
    if (!comma) {
      LB_TRY(expect(p, "]"));
      took = 1;
    }
  }
  if (i != n) return perr(p, &open, "%" PRId64 " elements given, the shape holds %" PRId64, i, n);
  v = &p->g->values[id];
  v->data = data;
  v->nbytes = nbytes;
  return 0;
}

/* ---- declarations and nodes ------------------------------------------------------------- */

/* Creates the value named by name_tok with type ts (the name must be new). */
static int define_value(parser *p, const token *name_tok, type_spec *ts, uint32_t *id) {
  LB_TRY(tok_text(p, name_tok));
  if (map_find(&p->map, p->g, p->buf) != LB_NONE)
    return perr(p, name_tok, "value %%%s is defined twice", p->buf);
  *id = lb_graph_add_value(p->g, p->buf, ts->dtype, ts->rank, ts->dims);
  if (*id == LB_NONE) return nomem(p);
  if (map_put(&p->map, p->g, *id)) return nomem(p);
  if (!ts->scale) return 0;
  lb_quant *q = &p->g->values[*id].q;
  q->scale = lb_arena_array(&p->g->arena, ts->n_scale, sizeof(float));
  q->zero_point = ts->zp ? lb_arena_array(&p->g->arena, ts->n_scale, sizeof(int32_t)) : NULL;
  if (!q->scale || (ts->zp && !q->zero_point)) return nomem(p);
  memcpy(q->scale, ts->scale, ts->n_scale * sizeof(float));
  if (ts->zp) memcpy(q->zero_point, ts->zp, ts->n_scale * sizeof(int32_t));
  q->n = ts->n_scale;
  q->axis = ts->axis;
  return 0;
}

/* %name: type */
static int parse_decl(parser *p, uint32_t *id) {
  token name = p->tok;
  if (name.kind != T_REF) return perr(p, &name, "expected a value name like %%x");
  LB_TRY(lex(p));
  LB_TRY(expect(p, ":"));
  type_spec ts;
  int rc = parse_type(p, &ts);
  if (!rc) rc = define_value(p, &name, &ts, id);
  type_free(&ts);
  return rc;
}

/* A use: %name (defined earlier) or _ (an absent optional input) when allow_none. */
static int parse_use(parser *p, uint32_t *id, int allow_none) {
  token t = p->tok;
  if (allow_none && t.kind == T_IDENT && tok_is(&t, "_")) {
    *id = LB_NONE;
    return lex(p);
  }
  if (t.kind != T_REF) return perr(p, &t, "expected a value name like %%x");
  LB_TRY(tok_text(p, &t));
  *id = map_find(&p->map, p->g, p->buf);
  if (*id == LB_NONE) return perr(p, &t, "undefined value %%%s", p->buf);
  return lex(p);
}

typedef struct {
  uint32_t seen; /* fields given, by bit */
  int n_spatial; /* from the spatial lists, -1 if none given */
  int n_pads;
} attr_state;

static int spatial_list(parser *p, int64_t *dst, attr_state *st) {
  token at = p->tok;
  int64_t v[LB_MAX_SPATIAL];
  int n;
  LB_TRY(i64_list(p, v, LB_MAX_SPATIAL, &n, 0, INT32_MAX));
  if (st->n_spatial >= 0 && n != st->n_spatial)
    return perr(p, &at, "%d spatial entries, but another list has %d", n, st->n_spatial);
  st->n_spatial = n;
  memcpy(dst, v, (size_t)n * sizeof *v);
  return 0;
}

static int enum_word(parser *p, const char *const *names, int count, int *out) {
  for (int i = 0; i < count; i++)
    if (p->tok.kind == T_IDENT && tok_is(&p->tok, names[i])) {
      *out = i;
      return lex(p);
    }
  return perr(p, &p->tok, "expected %s, %s or %s", names[0], names[1], names[2]);
}

static int parse_field(parser *p, lb_attrs *a, field k, attr_state *st) {
  int e = 0;
  switch (k) {
  case F_KERNEL: return spatial_list(p, a->kernel, st);
  case F_STRIDES: return spatial_list(p, a->strides, st);
  case F_DILATIONS: return spatial_list(p, a->dilations, st);
  case F_PADS: return i64_list(p, a->pads, 2 * LB_MAX_RANK, &st->n_pads, INT32_MIN, INT32_MAX);
  case F_AXES:
  case F_PERM: return i64_list(p, a->axes, LB_MAX_RANK, &a->n_axes, -LB_MAX_RANK, LB_MAX_RANK);
  case F_GROUP: return num_i64(p, &a->group, 0, INT32_MAX);
  case F_AXIS: return num_i64(p, &a->axis, -LB_MAX_RANK, LB_MAX_RANK);
  case F_START: return num_i64(p, &a->start, INT64_MIN, INT64_MAX);
  case F_END: return num_i64(p, &a->end, INT64_MIN, INT64_MAX);
  case F_CEIL_MODE: return num_int(p, &a->ceil_mode, 0, 1);
  case F_COUNT_INCLUDE_PAD: return num_int(p, &a->count_include_pad, 0, 1);
  case F_TRANS_A: return num_int(p, &a->trans_a, 0, 1);
  case F_TRANS_B: return num_int(p, &a->trans_b, 0, 1);
  case F_LEGACY_2D: return num_int(p, &a->legacy_2d, 0, 1);
  case F_KEEPDIMS: return num_int(p, &a->keepdims, 0, 1);
  case F_ALPHA: return num_f32(p, &a->alpha);
  case F_BETA: return num_f32(p, &a->beta);
  case F_CLIP_MIN: return num_f32(p, &a->clip_min);
  case F_CLIP_MAX: return num_f32(p, &a->clip_max);
  case F_PAD_VALUE: return num_f32(p, &a->pad_value);
  case F_EPSILON: return num_f32(p, &a->epsilon);
  case F_ACT_MIN: return num_f32(p, &a->act_min);
  case F_ACT_MAX: return num_f32(p, &a->act_max);
  case F_PAD_MODE: LB_TRY(enum_word(p, pad_mode_names, 3, &e)); a->pad_mode = (lb_pad_mode)e; return 0;
  case F_ACT: LB_TRY(enum_word(p, act_names, 3, &e)); a->act = (lb_act)e; return 0;
  case F_REQUANT: return enum_word(p, requant_names, 4, &a->requant);
  case F_COUNT: break;
  }
  lb_assert_fail(__FILE__, __LINE__, "field in range");
}

/* {key=value, ...}: only the fields op_fields[] lists for the op, each at most once. */
static int parse_attrs(parser *p, lb_node *nd, attr_state *st) {
  int took;
  LB_TRY(expect(p, "{"));
  LB_TRY(accept(p, "}", &took));
  if (took) return 0;
  do {
    token key = p->tok;
    int k = 0;
    while (k < F_COUNT && !(key.kind == T_IDENT && tok_is(&key, field_names[k]))) k++;
    if (k == F_COUNT)
      return perr(p, &key, "unknown attribute '%.*s'", (int)(key.n > 40 ? 40 : key.n), key.s);
    if (!(op_fields[nd->op] & (1u << k)))
      return perr(p, &key, "attribute '%s' does not apply to %s", field_names[k],
                  lb_op_get(nd->op)->name);
    if (st->seen & (1u << k)) return perr(p, &key, "attribute '%s' given twice", field_names[k]);
    st->seen |= 1u << k;
    LB_TRY(lex(p));
    LB_TRY(expect(p, "="));
    LB_TRY(parse_field(p, &nd->attr, (field)k, st));
    LB_TRY(accept(p, ",", &took));
  } while (took);
  return expect(p, "}");
}

/* conv/pool: n_spatial from the lists, else from the input (and conv's kernel from the
 * weights); unit strides and dilations when not given. Hand-written golden files stay short. */
static int finish_spatial(parser *p, lb_node *nd, const attr_state *st, const token *at) {
  lb_attrs *a = &nd->attr;
  const lb_value *x = &p->g->values[nd->in[0]];
  const lb_value *w = nd->op == LB_OP_CONV ? &p->g->values[nd->in[1]] : NULL;
  a->n_spatial = st->n_spatial >= 0 ? st->n_spatial : (w ? w->rank : x->rank) - 2;
  if (a->n_spatial < 0 || a->n_spatial > LB_MAX_SPATIAL)
    return perr(p, at, "cannot tell the number of spatial dims of %s", lb_op_get(nd->op)->name);
  for (int i = 0; i < a->n_spatial; i++) {
    if (!(st->seen & B(STRIDES))) a->strides[i] = 1;
    if (!(st->seen & B(DILATIONS))) a->dilations[i] = 1;
    if (!(st->seen & B(KERNEL)) && w && w->rank == a->n_spatial + 2) a->kernel[i] = w->dims[2 + i];
  }
  if (!(st->seen & B(KERNEL)) && !w && a->n_spatial > 0)
    return perr(p, at, "%s needs kernel=[...]", lb_op_get(nd->op)->name);
  if ((st->seen & B(PADS)) && st->n_pads != 2 * a->n_spatial)
    return perr(p, at, "pads has %d entries, expected %d (begins then ends)", st->n_pads,
                2 * a->n_spatial);
  return 0;
}

static int finish_attrs(parser *p, lb_node *nd, const attr_state *st, const token *at) {
  lb_attrs *a = &nd->attr;
  uint32_t unseen = op_fields[nd->op] & ~st->seen;
  if (op_fields[nd->op] & B(KERNEL)) LB_TRY(finish_spatial(p, nd, st, at));
  if (nd->op == LB_OP_PAD && (st->seen & B(PADS)) &&
      st->n_pads != 2 * p->g->values[nd->in[0]].rank)
    return perr(p, at, "pads has %d entries, expected 2*rank = %d", st->n_pads,
                2 * p->g->values[nd->in[0]].rank);
  if (unseen & B(GROUP)) a->group = 1;
  if (unseen & B(EPSILON)) a->epsilon = 1e-5f;
  if (unseen & B(KEEPDIMS)) a->keepdims = 1;
  if (unseen & B(END)) a->end = INT64_MAX;
  if ((unseen & B(ALPHA)) && nd->op == LB_OP_LEAKY_RELU) a->alpha = 0.01f;
  if ((unseen & B(ALPHA)) && nd->op == LB_OP_HARD_SIGMOID) a->alpha = 0.2f;
  if ((unseen & B(BETA)) && nd->op == LB_OP_HARD_SIGMOID) a->beta = 0.5f;
  if (unseen & B(CLIP_MIN)) a->clip_min = -INFINITY;
  if (unseen & B(CLIP_MAX)) a->clip_max = INFINITY;
  if (a->act == LB_ACT_CLIP && (unseen & B(ACT_MIN))) a->act_min = -INFINITY;
  if (a->act == LB_ACT_CLIP && (unseen & B(ACT_MAX))) a->act_max = INFINITY;
  if ((unseen & B(AXIS)) && nd->op == LB_OP_SOFTMAX) a->axis = -1;
  if ((unseen & B(AXIS)) && (nd->op == LB_OP_FLATTEN || nd->op == LB_OP_QUANTIZE ||
                             nd->op == LB_OP_DEQUANTIZE))
    a->axis = 1;
  return 0;
}

static int check_arity(parser *p, const token *at, lb_op op, const uint32_t *in, uint32_t n_in,
                       uint32_t n_out) {
  const lb_op_info *info = lb_op_get(op);
  if ((int)n_in < info->min_in || (int)n_in > info->max_in) {
    if (info->min_in == info->max_in)
      return perr(p, at, "%s takes %d inputs, got %u", info->name, info->min_in, n_in);
    return perr(p, at, "%s takes %d to %d inputs, got %u", info->name, info->min_in,
                info->max_in, n_in);
  }
  if ((int)n_out != info->n_out)
    return perr(p, at, "%s has %d outputs, got %u", info->name, info->n_out, n_out);
  for (int k = 0; k < info->min_in; k++)
    if (in[k] == LB_NONE) return perr(p, at, "%s: input %d is required", info->name, k);
  return 0;
}

/* (%a, _, %b): at most 64 uses, _ for an absent optional input */
static int parse_args(parser *p, uint32_t *in, uint32_t *n_in) {
  int took;
  LB_TRY(expect(p, "("));
  LB_TRY(accept(p, ")", &took));
  while (!took) {
    if (*n_in == 64) return perr(p, &p->tok, "too many inputs");
    LB_TRY(parse_use(p, &in[(*n_in)++], 1));
    int comma;
    LB_TRY(accept(p, ",", &comma));
    if (!comma) {
      LB_TRY(expect(p, ")"));
      took = 1;
    }
  }
  return 0;
}

/* %out: type [, ...] = op(%in, ...) [{attrs}] [name="..."] */
static int parse_node(parser *p) {
  uint32_t out[8], in[64], n_out = 0, n_in = 0;
  int took;
  do {
    if (n_out == 8) return perr(p, &p->tok, "too many outputs");
    LB_TRY(parse_decl(p, &out[n_out++]));
    LB_TRY(accept(p, ",", &took));
  } while (took);
  LB_TRY(expect(p, "="));
  token op_tok = p->tok;
  lb_op op;
  LB_TRY(tok_text(p, &op_tok));
  if (op_tok.kind != T_IDENT || lb_op_from_name(p->buf, &op))
    return perr(p, &op_tok, "unknown op '%.*s'", (int)(op_tok.n > 40 ? 40 : op_tok.n), op_tok.s);
  LB_TRY(lex(p));
  LB_TRY(parse_args(p, in, &n_in));
  LB_TRY(check_arity(p, &op_tok, op, in, n_in, n_out));
  uint32_t nid = lb_graph_add_node(p->g, op, "", in, n_in, out, n_out);
  if (nid == LB_NONE) return nomem(p);
  lb_node *nd = &p->g->nodes[nid];
  attr_state st = {0, -1, 0};
  if (tok_is(&p->tok, "{")) LB_TRY(parse_attrs(p, nd, &st));
  LB_TRY(finish_attrs(p, nd, &st, &op_tok));
  if (!tok_is(&p->tok, "name")) return 0;
  LB_TRY(lex(p));
  LB_TRY(expect(p, "="));
  token s = p->tok;
  if (s.kind != T_STR) return perr(p, &s, "expected a quoted node name");
  LB_TRY(tok_text(p, &s));
  nd->name = lb_arena_strdup(&p->g->arena, p->buf);
  if (!nd->name) return nomem(p);
  return lex(p);
}

static int parse_stmt(parser *p) {
  token t = p->tok;
  uint32_t id;
  int took;
  if (t.kind == T_REF) return parse_node(p);
  if (t.kind != T_IDENT) goto bad;
  if (tok_is(&t, "input")) {
    LB_TRY(lex(p));
    LB_TRY(parse_decl(p, &id));
    LB_TRY(accept(p, "=", &took));
    if (took) LB_TRY(parse_data(p, id));
    return lb_graph_add_input(p->g, id) ? nomem(p) : 0;
  }
  if (tok_is(&t, "const")) {
    LB_TRY(lex(p));
    LB_TRY(parse_decl(p, &id));
    LB_TRY(expect(p, "="));
    return parse_data(p, id);
  }
  if (tok_is(&t, "value")) {
    LB_TRY(lex(p));
    return parse_decl(p, &id);
  }
  if (tok_is(&t, "output")) {
    LB_TRY(lex(p));
    LB_TRY(parse_use(p, &id, 0));
    return lb_graph_add_output(p->g, id) ? nomem(p) : 0;
  }
bad:
  return perr(p, &t, "expected input, const, value, output or '%%name: type = op(...)', got %s",
              tok_desc(&t));
}

static int parse_graph(parser *p) {
  LB_TRY(lex(p));
  LB_TRY(expect(p, "graph"));
  token name = p->tok;
  if (name.kind != T_STR) return perr(p, &name, "expected the graph name as a quoted string");
  LB_TRY(tok_text(p, &name));
  p->g = lb_graph_new(p->buf);
  if (!p->g) return nomem(p);
  LB_TRY(lex(p));
  LB_TRY(expect(p, "{"));
  while (!tok_is(&p->tok, "}")) {
    if (p->tok.kind == T_EOF) return perr(p, &p->tok, "missing '}' at the end of the graph");
    LB_TRY(parse_stmt(p));
  }
  LB_TRY(lex(p));
  if (p->tok.kind != T_EOF) return perr(p, &p->tok, "text after the end of the graph");
  return 0;
}

int lb_graph_parse(const char *text, const char *filename, lb_graph **out, lb_diag *diag) {
  parser p;
  memset(&p, 0, sizeof p);
  p.text = p.pos = text;
  p.end = text + strlen(text);
  p.file = filename ? filename : "<text>";
  p.line = p.col = 1;
  p.diag = diag;
  *out = NULL;
  int rc = parse_graph(&p);
  if (!rc) {
    rc = lb_graph_verify(p.g, diag);
    if (rc == LB_ERR_NOMEM) {
      rc = nomem(&p);
    } else if (rc) {
      lb_diag_prefix(diag, "%s: error", p.file);
      rc = LB_ERR_INPUT;
    }
  }
  lb_free(p.map.slot);
  lb_free(p.buf);
  if (rc) {
    lb_graph_free(p.g);
    return rc;
  }
  *out = p.g;
  return 0;
}

/* ---- located diagnostics ---------------------------------------------------------------- */

int lb_diag_location(const lb_diag *d, int *line, int *col) {
  if (!d || !d->set) return -1;
  const char *e = strstr(d->msg, ": error: ");
  if (!e) return -1;
  /* back over ":COL" then ":LINE" */
  const char *q = e;
  int nums[2];
  for (int k = 1; k >= 0; k--) {
    const char *end = q;
    while (q > d->msg && is_digit((unsigned char)q[-1])) q--;
    if (q == end || q == d->msg || q[-1] != ':') return -1;
    nums[k] = atoi(q);
    q--;
  }
  *line = nums[0];
  *col = nums[1];
  return 0;
}

void lb_diag_print_source(FILE *f, const lb_diag *d, const char *text) {
  fprintf(f, "%s\n", d && d->set ? d->msg : "error");
  int line, col;
  if (!text || lb_diag_location(d, &line, &col)) return;
  const char *s = text;
  for (int l = 1; l < line && *s; s++)
    if (*s == '\n') l++;
  const char *e = s;
  while (*e && *e != '\n') e++;
  fprintf(f, "  %.*s\n  ", (int)(e - s), s);
  for (int i = 1; i < col && s + i - 1 < e; i++) fputc(s[i - 1] == '\t' ? '\t' : ' ', f);
  fputs("^\n", f);
}
