/* The spec schema: checks a merged YAML tree and fills an lb_spec. Every rule of
 * specs/README.md is enforced here, each failure located at the offending node
 * ("FILE:LINE:COL: error: ..."); nothing is stored that was not validated. The key tables below
 * are the schema: adding a field is one row and its reader. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spec_int.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- typed readers ---------------------------------------------------------------------- */

static const char *kind_word(const lb_ynode *n) {
  return n->kind == LB_YN_MAP ? "a mapping" : n->kind == LB_YN_SEQ ? "a list" : "a scalar";
}

static int want(const lb_ynode *n, lb_yn_kind kind, const char *what, lb_diag *d) {
  static const char *const words[] = {"a scalar", "a mapping", "a list"};
  if (n->kind == kind) return 0;
  return lb_yaml_err(d, n, "'%s' must be %s, got %s", what, words[kind], kind_word(n));
}

static int read_str(const lb_ynode *n, const char *what, const char **out, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SCALAR, what, d));
  *out = n->str;
  return 0;
}

/* Identifier-like strings: names, tokens, dtypes, cpu names, feature flags. */
static int read_word(const lb_ynode *n, const char *what, const char **out, lb_diag *d) {
  LB_TRY(read_str(n, what, out, d));
  if (!**out) return lb_yaml_err(d, n, "'%s' must not be empty", what);
  for (const char *p = *out; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("._-+", *p))
      return lb_yaml_err(d, n, "'%s': '%s' has a character other than letters, digits, '.', "
                               "'_', '-', '+'", what, *out);
  return 0;
}

static int read_double(const lb_ynode *n, const char *what, double lo, double hi, int lo_open,
                       double *out, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SCALAR, what, d));
  char *end;
  errno = 0;
  double v = strtod(n->str, &end);
  if (!n->plain || !*n->str || *end || errno || !isfinite(v) || isspace((unsigned char)*n->str))
    return lb_yaml_err(d, n, "'%s' must be a number, got '%s'", what, n->str);
  if (v < lo || (lo_open && v == lo) || v > hi)
    return lb_yaml_err(d, n, "'%s' is %s; it must be %s %g and at most %g", what, n->str,
                       lo_open ? "above" : "at least", lo, hi);
  *out = v;
  return 0;
}

static int read_int(const lb_ynode *n, const char *what, long long lo, long long hi,
                    long long *out, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SCALAR, what, d));
  char *end;
  errno = 0;
  long long v = strtoll(n->str, &end, 10);
  if (!n->plain || !*n->str || *end || errno || isspace((unsigned char)*n->str))
    return lb_yaml_err(d, n, "'%s' must be an integer, got '%s'", what, n->str);
  if (v < lo || v > hi)
    return lb_yaml_err(d, n, "'%s' is %lld; it must be between %lld and %lld", what, v, lo, hi);
  *out = v;
  return 0;
}

static int read_bool(const lb_ynode *n, const char *what, int *out, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SCALAR, what, d));
  if (n->plain && strcmp(n->str, "true") == 0) return *out = 1, 0;
  if (n->plain && strcmp(n->str, "false") == 0) return *out = 0, 0;
  return lb_yaml_err(d, n, "'%s' must be true or false, got '%s'", what, n->str);
}

/* One word out of a closed set, with "did you mean". */
static int read_enum(const lb_ynode *n, const char *what, const char *const *names, size_t count,
                     int *out, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SCALAR, what, d));
  for (size_t i = 0; i < count; i++)
    if (names[i] && strcmp(n->str, names[i]) == 0) return *out = (int)i, 0;
  const char *near = lb_did_you_mean(n->str, names, count);
  char list[256] = "";
  for (size_t i = 0; i < count; i++)
    if (names[i] && strlen(list) + strlen(names[i]) + 2 < sizeof list)
      strcat(strcat(list, *list ? " " : ""), names[i]);
  if (near) return lb_yaml_err(d, n, "unknown %s '%s' (did you mean '%s'?)", what, n->str, near);
  return lb_yaml_err(d, n, "unknown %s '%s' (expected one of: %s)", what, n->str, list);
}

/* A word or a list of words out of a closed set, as a bit set. */
static int read_set(const lb_ynode *n, const char *what, const char *const *names, size_t count,
                    unsigned *out, lb_diag *d) {
  *out = 0;
  int v;
  if (n->kind == LB_YN_SCALAR) {
    LB_TRY(read_enum(n, what, names, count, &v, d));
    *out = 1u << v;
    return 0;
  }
  LB_TRY(want(n, LB_YN_SEQ, what, d));
  if (n->n == 0) return lb_yaml_err(d, n, "'%s' must not be an empty list", what);
  for (size_t i = 0; i < n->n; i++) {
    LB_TRY(read_enum(n->val[i], what, names, count, &v, d));
    *out |= 1u << v;
  }
  return 0;
}

/* ---- maps: allowed keys and required fields -------------------------------------------- */

static int check_keys(const lb_ynode *map, const char *what, const char *const *keys, size_t n,
                      lb_diag *d) {
  LB_TRY(want(map, LB_YN_MAP, what, d));
  for (size_t i = 0; i < map->n; i++) {
    const char *k = map->key[i]->str;
    size_t j = 0;
    while (j < n && strcmp(k, keys[j]) != 0) j++;
    if (j < n) continue;
    const char *near = lb_did_you_mean(k, keys, n);
    if (near)
      return lb_yaml_err(d, map->key[i], "unknown key '%s' in %s (did you mean '%s'?)", k, what,
                         near);
    char list[384] = "";
    for (j = 0; j < n && strlen(list) + strlen(keys[j]) + 3 < sizeof list; j++)
      strcat(strcat(list, *list ? ", " : ""), keys[j]);
    return lb_yaml_err(d, map->key[i], "unknown key '%s' in %s (expected one of: %s)", k, what,
                       list);
  }
  return 0;
}

static int need(const lb_ynode *map, const char *key, const char *what, const lb_ynode **out,
                lb_diag *d) {
  *out = lb_yaml_get(map, key);
  if (*out) return 0;
  return lb_yaml_err(d, map, "missing required field '%s' in %s", key, what);
}

/* ---- sections --------------------------------------------------------------------------- */

static const char *dup(lb_spec *s, const char *str, lb_diag *d) {
  const char *c = lb_arena_strdup(&s->arena, str);
  if (!c) lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  return c;
}

#define DUP(dst, str)                                                                            \
  do {                                                                                           \
    if (!((dst) = dup(s, (str), d))) return LB_ERR_NOMEM;                                        \
  } while (0)

static int read_llvm(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  static const char *const keys[] = {"triple", "cpu", "features"};
  const lb_ynode *v;
  const char *str;
  LB_TRY(check_keys(n, "llvm", keys, N_OF(keys), d));
  LB_TRY(need(n, "triple", "llvm", &v, d));
  LB_TRY(read_word(v, "llvm.triple", &str, d));
  DUP(s->triple, str);
  LB_TRY(need(n, "cpu", "llvm", &v, d));
  LB_TRY(read_word(v, "llvm.cpu", &str, d));
  DUP(s->cpu, str);
  LB_TRY(need(n, "features", "llvm", &v, d));
  LB_TRY(read_str(v, "llvm.features", &str, d));
  /* a comma list of +name / -name, which is what LLVM's target machine takes */
  for (const char *p = str; *p;) {
    if (*p != '+' && *p != '-')
      return lb_yaml_err(d, v, "llvm.features: each feature must start with '+' or '-', as "
                               "in \"+avx2,+fma\"");
    size_t len = strcspn(p, ",");
    for (size_t i = 1; i < len; i++)
      if (!isalnum((unsigned char)p[i]) && !strchr("._-", p[i]))
        return lb_yaml_err(d, v, "llvm.features: bad character '%c' in a feature name", p[i]);
    if (len < 2) return lb_yaml_err(d, v, "llvm.features: empty feature name");
    p += len + (p[len] == ',');
  }
  DUP(s->features, str);
  return 0;
}

static int read_host_requires(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  LB_TRY(want(n, LB_YN_SEQ, "host.requires", d));
  s->host_requires = lb_arena_array(&s->arena, n->n + 1, sizeof *s->host_requires);
  if (!s->host_requires) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n->n; i++) {
    const char *str;
    LB_TRY(read_word(n->val[i], "host.requires", &str, d));
    DUP(s->host_requires[i], str);
  }
  s->n_requires = n->n;
  return 0;
}

static int read_host_match(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  LB_TRY(want(n, LB_YN_MAP, "host.cpuinfo", d));
  s->host_match = lb_arena_array(&s->arena, 2 * n->n + 1, sizeof *s->host_match);
  if (!s->host_match) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n->n; i++) {
    const char *str;
    LB_TRY(read_str(n->val[i], "host.cpuinfo value", &str, d));
    if (!*str) return lb_yaml_err(d, n->val[i], "'host.cpuinfo value' must not be empty");
    DUP(s->host_match[2 * i], n->key[i]->str);
    DUP(s->host_match[2 * i + 1], str);
  }
  s->n_match = n->n;
  return 0;
}

static int read_host(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  static const char *const keys[] = {"arch", "requires", "cpu", "cpuinfo"};
  const lb_ynode *v;
  const char *str;
  LB_TRY(check_keys(n, "host", keys, N_OF(keys), d));
  LB_TRY(need(n, "arch", "host", &v, d));
  LB_TRY(read_word(v, "host.arch", &str, d));
  DUP(s->host_arch, str);
  str = "generic"; /* a CPU name that implies no features: the host's own list says them */
  if ((v = lb_yaml_get(n, "cpu"))) LB_TRY(read_word(v, "host.cpu", &str, d));
  DUP(s->host_cpu, str);
  if ((v = lb_yaml_get(n, "requires"))) LB_TRY(read_host_requires(v, s, d));
  if ((v = lb_yaml_get(n, "cpuinfo"))) LB_TRY(read_host_match(v, s, d));
  return 0;
}

static int read_isa(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  static const char *const keys[] = {"token", "vector_bits", "vector_registers"};
  const lb_ynode *v;
  const char *str;
  long long x;
  LB_TRY(check_keys(n, "isa", keys, N_OF(keys), d));
  LB_TRY(need(n, "token", "isa", &v, d));
  LB_TRY(read_word(v, "isa.token", &str, d));
  DUP(s->isa, str);
  LB_TRY(need(n, "vector_bits", "isa", &v, d));
  LB_TRY(read_int(v, "isa.vector_bits", 32, 2048, &x, d));
  if (x & (x - 1)) return lb_yaml_err(d, v, "'isa.vector_bits' must be a power of two, got %lld", x);
  s->vector_bits = (int)x;
  LB_TRY(need(n, "vector_registers", "isa", &v, d));
  LB_TRY(read_int(v, "isa.vector_registers", 1, 256, &x, d));
  s->vector_registers = (int)x;
  return 0;
}

static int read_level(const lb_ynode *n, const char *what, int is_dram, lb_spec_mem *m,
                      lb_diag *d) {
  static const char *const keys[] = {"size_kib", "bytes_per_cycle"};
  const lb_ynode *v;
  long long kib = 0;
  /* dram has no size: its only key is bytes_per_cycle */
  LB_TRY(check_keys(n, what, keys + is_dram, N_OF(keys) - is_dram, d));
  if (!is_dram) {
    LB_TRY(need(n, "size_kib", what, &v, d));
    LB_TRY(read_int(v, "size_kib", 1, 1LL << 30, &kib, d));
  }
  m->bytes = kib * 1024;
  LB_TRY(need(n, "bytes_per_cycle", what, &v, d));
  return read_double(v, "bytes_per_cycle", 0, 1e6, 1, &m->bytes_per_cycle, d);
}

static int read_memory(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  static const char *const keys[] = {"l1", "l2", "l3", "dram"};
  static const char *const whats[] = {"memory.l1", "memory.l2", "memory.l3"};
  const lb_ynode *v;
  lb_spec_mem dram;
  LB_TRY(check_keys(n, "memory", keys, N_OF(keys), d));
  LB_TRY(need(n, "l1", "memory", &v, d));
  s->n_levels = 0;
  for (int l = 0; l < 3; l++) {
    if (!(v = lb_yaml_get(n, keys[l]))) break;
    LB_TRY(read_level(v, whats[l], 0, &s->mem[l], d));
    s->n_levels = l + 1;
  }
  if (s->n_levels < 2 && (v = lb_yaml_get(n, keys[s->n_levels + 1])))
    return lb_yaml_err(d, v, "memory.%s given without memory.%s", keys[s->n_levels + 1],
                       keys[s->n_levels]);
  LB_TRY(need(n, "dram", "memory", &v, d));
  LB_TRY(read_level(v, "memory.dram", 1, &dram, d));
  s->dram_bytes_per_cycle = dram.bytes_per_cycle;
  return 0;
}

/* ---- precision combinations ------------------------------------------------------------- */

static const char *const combo_keys[] = {
    "act",        "weight",     "acc",    "out",            "granularity",   "act_scheme",
    "weight_scheme", "narrow_range", "requantize", "kernel", "macs_per_cycle", "efficiency",
    "elements_per_cycle"};
/* keys that only mean something for integer combinations */
static const char *const quant_keys[] = {"granularity", "act_scheme", "weight_scheme",
                                         "narrow_range", "requantize"};
static const char *const gran_names[] = {"per_tensor", "per_channel"};
static const char *const scheme_names[] = {"symmetric", "asymmetric"};
static const char *const requant_names[] = {"none", "fp32", "fixed_point", "shift"};
static const char *const kernel_names[] = {
#define X(e, s) #s,
    LB_SPEC_KERNELS(X)
#undef X
};
_Static_assert(N_OF(requant_names) == LB_REQUANT_COUNT, "requant table");
_Static_assert(N_OF(kernel_names) == LB_KERNEL_COUNT, "kernel table");

const char *lb_requant_name(lb_requant r) { return r < LB_REQUANT_COUNT ? requant_names[r] : "?"; }
const char *lb_spec_kernel_name(lb_spec_kernel k) {
  return k < LB_KERNEL_COUNT ? kernel_names[k] : "?";
}

/* dtypes a spec may name: the storage types of ir.h without the ONNX-only ones */
static int read_dtype(const lb_ynode *n, const char *what, lb_dtype *out, lb_diag *d) {
  const char *names[LB_DTYPE_COUNT];
  for (int t = 0; t < LB_DTYPE_COUNT; t++)
    names[t] = t == LB_DTYPE_F64 || t == LB_DTYPE_I64 || t == LB_DTYPE_BOOL
                   ? NULL
                   : lb_dtype_name((lb_dtype)t);
  int v = 0;
  LB_TRY(read_enum(n, what, names, LB_DTYPE_COUNT, &v, d));
  *out = (lb_dtype)v;
  return 0;
}

static int read_combo_dtypes(const lb_ynode *n, lb_spec_opkind k, lb_spec_combo *c,
                             lb_diag *d) {
  const lb_ynode *v;
  const char *kind = lb_spec_opkind_name(k);
  LB_TRY(need(n, "act", "a combination", &v, d));
  LB_TRY(read_dtype(v, "dtype", &c->act, d));
  c->weight = LB_DTYPE_COUNT;
  if (lb_spec_opkind_has_weight(k)) {
    LB_TRY(need(n, "weight", "a combination", &v, d));
    LB_TRY(read_dtype(v, "dtype", &c->weight, d));
  } else if ((v = lb_yaml_get(n, "weight"))) {
    return lb_yaml_err(d, v, "'weight' does not apply to %s (it has no weight operand)", kind);
  }
  LB_TRY(need(n, "acc", "a combination", &v, d));
  LB_TRY(read_dtype(v, "dtype", &c->acc, d));
  LB_TRY(need(n, "out", "a combination", &v, d));
  LB_TRY(read_dtype(v, "dtype", &c->out, d));
  /* i7/i6/i5 are weight precisions (8-bit storage, narrower range), never activations */
  const char *keys[3] = {"act", "acc", "out"};
  lb_dtype dts[3] = {c->act, c->acc, c->out};
  for (int i = 0; i < 3; i++)
    if (lb_dtype_narrow8(dts[i]))
      return lb_yaml_err(d, lb_yaml_get(n, keys[i]), "%s is a weight dtype, not an '%s' dtype",
                         lb_dtype_name(dts[i]), keys[i]);
  int fl = lb_dtype_is_float(c->act);
  if (fl && ((c->weight != LB_DTYPE_COUNT && c->weight != LB_DTYPE_F32) ||
             c->acc != LB_DTYPE_F32 || c->out != LB_DTYPE_F32))
    return lb_yaml_err(d, n, "an f32 combination is f32 throughout (weight, acc and out)");
  if (!fl && c->weight == LB_DTYPE_F32)
    return lb_yaml_err(d, n, "integer activations with f32 weights are not a combination");
  /* MAC ops need a wide accumulator; copies and clamps (concat, max pool, relu) may keep the
   * activation dtype */
  if (!fl && lb_spec_opkind_has_weight(k) && c->acc != LB_DTYPE_I32 && c->acc != LB_DTYPE_I16)
    return lb_yaml_err(d, lb_yaml_get(n, "acc"), "%s accumulates in i32 or i16, not %s", kind,
                       lb_dtype_name(c->acc));
  if (!fl && lb_dtype_is_float(c->acc))
    return lb_yaml_err(d, lb_yaml_get(n, "acc"), "an integer combination cannot accumulate in %s",
                       lb_dtype_name(c->acc));
  if (!fl && lb_dtype_bits(c->acc) < lb_dtype_bits(c->act))
    return lb_yaml_err(d, lb_yaml_get(n, "acc"), "accumulator %s is narrower than the %s input",
                       lb_dtype_name(c->acc), lb_dtype_name(c->act));
  return 0;
}

static int read_combo_quant(const lb_ynode *n, lb_spec_opkind k, lb_spec_combo *c,
                            lb_diag *d) {
  const lb_ynode *v;
  int w = lb_spec_opkind_has_weight(k), e = 0;
  if (lb_dtype_is_float(c->act)) {
    for (size_t i = 0; i < N_OF(quant_keys); i++)
      if ((v = lb_yaml_get(n, quant_keys[i])))
        return lb_yaml_err(d, v, "'%s' applies only to integer combinations", quant_keys[i]);
    return 0;
  }
  c->granularity = w ? LB_GRAN_PER_TENSOR | LB_GRAN_PER_CHANNEL : LB_GRAN_PER_TENSOR;
  if ((v = lb_yaml_get(n, "granularity"))) {
    LB_TRY(read_set(v, "granularity", gran_names, N_OF(gran_names), &c->granularity, d));
    if (!w && (c->granularity & LB_GRAN_PER_CHANNEL))
      return lb_yaml_err(d, v, "per_channel granularity needs weights; %s has none",
                         lb_spec_opkind_name(k));
  }
  c->act_scheme = LB_SCHEME_SYMMETRIC | LB_SCHEME_ASYMMETRIC;
  if ((v = lb_yaml_get(n, "act_scheme")))
    LB_TRY(read_set(v, "scheme", scheme_names, N_OF(scheme_names), &c->act_scheme, d));
  c->weight_scheme = w ? LB_SCHEME_SYMMETRIC : 0;
  if ((v = lb_yaml_get(n, "weight_scheme"))) {
    if (!w) return lb_yaml_err(d, v, "'weight_scheme' does not apply to %s", lb_spec_opkind_name(k));
    LB_TRY(read_set(v, "scheme", scheme_names, N_OF(scheme_names), &c->weight_scheme, d));
  }
  if ((v = lb_yaml_get(n, "narrow_range"))) LB_TRY(read_bool(v, "narrow_range", &c->narrow_range, d));
  /* a copy or clamp that keeps its input dtype needs no requantize; anything else does */
  c->requant = !w && c->acc == c->act && c->out == c->act ? LB_REQUANT_NONE : LB_REQUANT_FP32;
  if ((v = lb_yaml_get(n, "requantize"))) {
    LB_TRY(read_enum(v, "requantize method", requant_names, N_OF(requant_names), &e, d));
    c->requant = (lb_requant)e;
    if (c->requant == LB_REQUANT_NONE && c->out != c->acc)
      return lb_yaml_err(d, v, "requantize 'none' but the %s accumulator is stored as %s",
                         lb_dtype_name(c->acc), lb_dtype_name(c->out));
  }
  return 0;
}

static int read_combo_cost(const lb_ynode *n, lb_spec_opkind k, lb_spec_combo *c, lb_diag *d) {
  static const char *const macs_kinds = "conv2d, depthwise_conv2d, dense and matmul";
  const lb_ynode *v;
  const int macs = k == LB_SPEC_CONV2D || k == LB_SPEC_DEPTHWISE_CONV2D || k == LB_SPEC_DENSE ||
                   k == LB_SPEC_MATMUL;
  if (macs) {
    LB_TRY(need(n, "macs_per_cycle", "a combination", &v, d));
    LB_TRY(read_double(v, "macs_per_cycle", 0, 1e6, 1, &c->macs_per_cycle, d));
  } else if ((v = lb_yaml_get(n, "macs_per_cycle"))) {
    return lb_yaml_err(d, v, "'macs_per_cycle' applies only to %s", macs_kinds);
  }
  LB_TRY(need(n, "efficiency", "a combination", &v, d));
  LB_TRY(read_double(v, "efficiency", 0, 1, 1, &c->efficiency, d));
  LB_TRY(need(n, "elements_per_cycle", "a combination", &v, d));
  return read_double(v, "elements_per_cycle", 0, 1e6, 1, &c->elements_per_cycle, d);
}

static int read_combo(const lb_ynode *n, lb_spec_opkind k, lb_spec *s, lb_spec_combo *c,
                      lb_diag *d) {
  const lb_ynode *v;
  int e;
  LB_TRY(check_keys(n, "a combination", combo_keys, N_OF(combo_keys), d));
  c->line = n->line;
  DUP(c->file, n->file);
  LB_TRY(read_combo_dtypes(n, k, c, d));
  LB_TRY(read_combo_quant(n, k, c, d));
  c->kernel = LB_KERNEL_GENERIC;
  if ((v = lb_yaml_get(n, "kernel"))) {
    LB_TRY(read_enum(v, "kernel", kernel_names, N_OF(kernel_names), &e, d));
    c->kernel = (lb_spec_kernel)e;
  }
  return read_combo_cost(n, k, c, d);
}

/* YAML null (~, null or nothing): in a derived spec it removes what the base declared. */
static int is_null(const lb_ynode *n) {
  return n->kind == LB_YN_SCALAR && n->plain &&
         (!*n->str || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0);
}

static int same_dtypes(const lb_spec_combo *a, const lb_spec_combo *b) {
  return a->act == b->act && a->weight == b->weight && a->acc == b->acc && a->out == b->out;
}

/* An op kind is a map from a label of your choice to a combination; labels let a derived spec
 * override one figure of one combination. */
static int read_kind(const lb_ynode *n, lb_spec_opkind k, lb_spec *s, lb_diag *d) {
  static const lb_ynode empty = {.kind = LB_YN_MAP};
  const char *kind = lb_spec_opkind_name(k), *label;
  if (is_null(n)) n = &empty;
  LB_TRY(want(n, LB_YN_MAP, kind, d));
  s->combos[k] = lb_arena_array(&s->arena, n->n + 1, sizeof(lb_spec_combo));
  if (!s->combos[k]) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  size_t m = 0;
  for (size_t i = 0; i < n->n; i++) {
    if (is_null(n->val[i])) continue;
    lb_spec_combo *c = &s->combos[k][m];
    LB_TRY(read_word(n->key[i], "combination label", &label, d));
    DUP(c->label, label);
    LB_TRY(want(n->val[i], LB_YN_MAP, "a combination", d));
    LB_TRY(read_combo(n->val[i], k, s, c, d));
    for (size_t j = 0; j < m; j++)
      if (same_dtypes(&s->combos[k][j], c))
        return lb_yaml_err(d, n->key[i], "%s.%s declares the same dtypes as %s.%s (%s:%d)", kind,
                           label, kind, s->combos[k][j].label, s->combos[k][j].file,
                           s->combos[k][j].line);
    m++;
  }
  s->n_combos[k] = m;
  return 0;
}

static int read_ops(const lb_ynode *n, lb_spec *s, lb_diag *d) {
  const char *names[LB_SPEC_OPKIND_COUNT];
  for (int k = 0; k < LB_SPEC_OPKIND_COUNT; k++) names[k] = lb_spec_opkind_name((lb_spec_opkind)k);
  LB_TRY(want(n, LB_YN_MAP, "ops", d));
  for (size_t i = 0; i < n->n; i++) {
    int k;
    LB_TRY(read_enum(n->key[i], "op kind", names, LB_SPEC_OPKIND_COUNT, &k, d));
    LB_TRY(read_kind(n->val[i], (lb_spec_opkind)k, s, d));
  }
  return 0;
}

/* ---- top level -------------------------------------------------------------------------- */

int lb_spec_from_tree(const lb_ynode *root, lb_spec *s, lb_diag *d) {
  static const char *const keys[] = {"name", "description", "extends", "llvm", "host",
                                     "isa",  "clock_ghz",   "memory",  "ops"};
  const lb_ynode *v;
  const char *str = "";
  LB_TRY(check_keys(root, "the spec", keys, N_OF(keys), d));
  LB_TRY(need(root, "name", "the spec", &v, d));
  LB_TRY(read_word(v, "name", &str, d));
  DUP(s->name, str);
  str = "";
  if ((v = lb_yaml_get(root, "description"))) LB_TRY(read_str(v, "description", &str, d));
  DUP(s->description, str);
  LB_TRY(need(root, "llvm", "the spec", &v, d));
  LB_TRY(read_llvm(v, s, d));
  if ((v = lb_yaml_get(root, "host"))) LB_TRY(read_host(v, s, d));
  LB_TRY(need(root, "isa", "the spec", &v, d));
  LB_TRY(read_isa(v, s, d));
  LB_TRY(need(root, "clock_ghz", "the spec", &v, d));
  LB_TRY(read_double(v, "clock_ghz", 0, 20, 1, &s->clock_ghz, d));
  LB_TRY(need(root, "memory", "the spec", &v, d));
  LB_TRY(read_memory(v, s, d));
  LB_TRY(need(root, "ops", "the spec", &v, d));
  return read_ops(v, s, d);
}
