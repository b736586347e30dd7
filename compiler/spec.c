/* Target spec loading and queries: files, names and buffers to a validated lb_spec, with
 * `extends` resolved (maps merge recursively, lists and scalars replace; cycles and chains
 * longer than LB_SPEC_MAX_EXTENDS are errors). Also the op-kind table, the queries later passes
 * use, the canonical YAML writer (`lowbit spec show`) and diagnostics with a source caret. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spec_int.h"

/* ---- op kinds --------------------------------------------------------------------------- */

static const struct {
  const char *name;
  int has_weight;
} kinds[] = {
#define X(e, s, w, m) {#s, w},
    LB_SPEC_OPKINDS(X)
#undef X
};
_Static_assert(sizeof kinds / sizeof kinds[0] == LB_SPEC_OPKIND_COUNT, "op kind table");

const char *lb_spec_opkind_name(lb_spec_opkind k) {
  return (unsigned)k < LB_SPEC_OPKIND_COUNT ? kinds[k].name : "?";
}

int lb_spec_opkind_has_weight(lb_spec_opkind k) {
  return (unsigned)k < LB_SPEC_OPKIND_COUNT && kinds[k].has_weight;
}

int lb_spec_opkind_from_name(const char *s, lb_spec_opkind *out) {
  for (int k = 0; k < LB_SPEC_OPKIND_COUNT; k++)
    if (strcmp(s, kinds[k].name) == 0) return *out = (lb_spec_opkind)k, 0;
  return -1;
}

/* IR op -> spec op kind; conv and matmul are refined by their operands below. */
static int kind_of_op(lb_op op) {
  switch (op) {
  case LB_OP_CONV: return LB_SPEC_CONV2D;
  case LB_OP_GEMM: return LB_SPEC_DENSE;
  case LB_OP_MATMUL: return LB_SPEC_MATMUL;
  case LB_OP_ADD:
  case LB_OP_SUB: return LB_SPEC_ADD;
  case LB_OP_MUL: return LB_SPEC_MUL;
  case LB_OP_MAX_POOL:
  case LB_OP_AVG_POOL:
  case LB_OP_GLOBAL_AVG_POOL:
  case LB_OP_REDUCE_MEAN: return LB_SPEC_POOL; /* (ops) an average over axes */
  case LB_OP_RELU:
  case LB_OP_LEAKY_RELU:
  case LB_OP_CLIP:
  case LB_OP_SIGMOID:
  case LB_OP_TANH:
  case LB_OP_HARD_SIGMOID:
  case LB_OP_HARD_SWISH: return LB_SPEC_ACTIVATION;
  case LB_OP_CONCAT: return LB_SPEC_CONCAT;
  default: return -1;
  }
}

int lb_spec_opkind_of(const lb_graph *g, uint32_t node) {
  const lb_node *n = &g->nodes[node];
  int k = kind_of_op(n->op);
  if (k == LB_SPEC_CONV2D) {
    if (n->attr.n_spatial > 2) return -1; /* the spec describes 1-D/2-D convolutions */
    const lb_value *w = &g->values[n->in[1]];
    if (n->attr.group > 1 && w->rank >= 2 && w->dims[1] == 1) return LB_SPEC_DEPTHWISE_CONV2D;
  }
  if (k == LB_SPEC_MATMUL && g->values[n->in[1]].data) return LB_SPEC_DENSE;
  /* (ops) a division by a constant is a multiplication by its reciprocal */
  if (n->op == LB_OP_DIV) return g->values[n->in[1]].data ? LB_SPEC_MUL : -1;
  return k;
}

/* ---- queries ---------------------------------------------------------------------------- */

const char *lb_spec_name(const lb_spec *s) { return s->name; }
const char *lb_spec_description(const lb_spec *s) { return s->description; }
const char *lb_spec_llvm_triple(const lb_spec *s) { return s->triple; }
const char *lb_spec_llvm_cpu(const lb_spec *s) { return s->cpu; }
const char *lb_spec_llvm_features(const lb_spec *s) { return s->features; }
const char *lb_spec_isa(const lb_spec *s) { return s->isa; }
int lb_spec_vector_bits(const lb_spec *s) { return s->vector_bits; }
int lb_spec_vector_registers(const lb_spec *s) { return s->vector_registers; }
double lb_spec_clock_ghz(const lb_spec *s) { return s->clock_ghz; }
int lb_spec_is_host(const lb_spec *s) { return s->is_host; }
int lb_spec_cache_levels(const lb_spec *s) { return s->n_levels; }
double lb_spec_dram_bytes_per_cycle(const lb_spec *s) { return s->dram_bytes_per_cycle; }

int lb_spec_memory(const lb_spec *s, int level, lb_spec_mem *m) {
  if (level < 1 || level > s->n_levels) return -1;
  *m = s->mem[level - 1];
  return 0;
}

int64_t lb_spec_cache_bytes(const lb_spec *s, int level) {
  lb_spec_mem m;
  return lb_spec_memory(s, level, &m) == 0 ? m.bytes : 0;
}

size_t lb_spec_combos(const lb_spec *s, lb_spec_opkind k, const lb_spec_combo **out) {
  if ((unsigned)k >= LB_SPEC_OPKIND_COUNT) return *out = NULL, 0;
  *out = s->combos[k];
  return s->n_combos[k];
}

int lb_spec_set_efficiency(lb_spec *s, lb_spec_opkind k, const char *label, double eff) {
  if ((unsigned)k >= LB_SPEC_OPKIND_COUNT || !(eff > 0 && eff <= 1)) return -1;
  for (size_t i = 0; i < s->n_combos[k]; i++)
    if (strcmp(s->combos[k][i].label, label) == 0) return s->combos[k][i].efficiency = eff, 0;
  return -1;
}

double lb_spec_combo_rate(const lb_spec_combo *c) {
  return (c->macs_per_cycle > 0 ? c->macs_per_cycle : c->elements_per_cycle) * c->efficiency;
}

const lb_spec_combo *lb_spec_find(const lb_spec *s, lb_spec_opkind k, lb_dtype act,
                                  lb_dtype weight) {
  const lb_spec_combo *c, *best = NULL;
  size_t n = lb_spec_combos(s, k, &c);
  for (size_t i = 0; i < n; i++) {
    if (c[i].act != act || (lb_spec_opkind_has_weight(k) && c[i].weight != weight)) continue;
    if (!best || lb_spec_combo_rate(&c[i]) > lb_spec_combo_rate(best)) best = &c[i];
  }
  return best;
}

double lb_spec_fp32_peak_macs(const lb_spec *s) {
  const lb_spec_combo *c = lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_F32, LB_DTYPE_F32);
  return c ? c->macs_per_cycle : 0;
}

double lb_spec_int8_peak_macs(const lb_spec *s) {
  const lb_spec_combo *u = lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_U8, LB_DTYPE_I8);
  const lb_spec_combo *i = lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_I8, LB_DTYPE_I8);
  double pu = u ? u->macs_per_cycle : 0, pi = i ? i->macs_per_cycle : 0;
  return pu > pi ? pu : pi;
}

void lb_spec_free(lb_spec *s) {
  if (!s) return;
  lb_arena_free(&s->arena);
  lb_free(s);
}

/* ---- files and the spec directory ------------------------------------------------------- */

const char *lb_spec_dir(void) {
  const char *env = getenv("LOWBIT_SPEC_DIR");
  return env && *env ? env : LB_SPEC_DIR;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int is_path(const char *s) {
  return strchr(s, '/') || ends_with(s, ".yaml") || ends_with(s, ".yml");
}

/* Reads a whole file into a lb_malloc'd buffer; refuses more than LB_SPEC_MAX_BYTES. */
static int read_file(const char *path, char **out, size_t *len, lb_diag *d) {
  FILE *f = fopen(path, "rb");
  if (!f) return lb_diag_err(d, LB_ERR_INPUT, "%s: error: cannot open: %s", path, strerror(errno));
  char *buf = lb_malloc(LB_SPEC_MAX_BYTES + 1);
  if (!buf) {
    fclose(f);
    return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  }
  size_t n = fread(buf, 1, LB_SPEC_MAX_BYTES + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > LB_SPEC_MAX_BYTES) {
    lb_free(buf);
    return bad ? lb_diag_err(d, LB_ERR_INPUT, "%s: error: cannot read (is it a directory?)", path)
               : lb_diag_err(d, LB_ERR_INPUT, "%s: error: larger than %d bytes", path,
                             LB_SPEC_MAX_BYTES);
  }
  buf[n] = 0;
  *out = buf, *len = n;
  return 0;
}

static int file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

/* ---- loading with extends --------------------------------------------------------------- */

typedef struct loader {
  lb_arena *tmp; /* trees and paths; freed when loading ends */
  lb_diag *diag;
  const char *chain[LB_SPEC_MAX_EXTENDS + 2]; /* real paths of the files being loaded */
  int depth;
  int from_buffer; /* the top document has no directory of its own */
} loader;

static int load_tree(loader *L, const char *file, const char *buf, size_t len, lb_ynode **out);

/* Where `extends: X` written in `from` points: a path relative to from's directory, or a name
 * looked up next to `from` and then in the bundled directory. */
static int resolve(loader *L, const lb_ynode *ext, const char *from, char *path, size_t cap) {
  const char *x = ext->str, *slash = strrchr(from, '/');
  int dir_len = slash && !(L->from_buffer && L->depth == 1) ? (int)(slash - from) : -1;
  if (is_path(x)) {
    if (x[0] == '/' || dir_len < 0) snprintf(path, cap, "%s", x);
    else snprintf(path, cap, "%.*s/%s", dir_len, from, x);
    if (file_exists(path)) return 0;
    return lb_yaml_err(L->diag, ext, "extends '%s': no such file %s", x, path);
  }
  for (const char *p = x; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
      return lb_yaml_err(L->diag, ext, "extends '%s': not a spec name or a path", x);
  if (!(L->from_buffer && L->depth == 1)) {
    snprintf(path, cap, "%.*s%s%s.yaml", dir_len < 0 ? 0 : dir_len, from,
             dir_len < 0 ? "" : "/", x);
    if (file_exists(path)) return 0;
  }
  snprintf(path, cap, "%s/%s.yaml", lb_spec_dir(), x);
  if (file_exists(path)) return 0;
  char **names;
  lb_diag quiet;
  lb_diag_clear(&quiet);
  int n = lb_spec_list_names(&names, &quiet);
  const char *near = n > 0 ? lb_did_you_mean(x, (const char *const *)names, (size_t)n) : NULL;
  int rc = near ? lb_yaml_err(L->diag, ext, "extends '%s': no spec of that name next to this "
                              "file or in %s (did you mean '%s'?)", x, lb_spec_dir(), near)
                : lb_yaml_err(L->diag, ext, "extends '%s': no spec of that name next to this "
                              "file or in %s", x, lb_spec_dir());
  if (n >= 0) lb_spec_names_free(names, n);
  return rc;
}

static int load_base(loader *L, const lb_ynode *ext, const char *from, lb_ynode **out) {
  char path[PATH_MAX], real[PATH_MAX];
  if (ext->kind != LB_YN_SCALAR || !*ext->str)
    return lb_yaml_err(L->diag, ext, "'extends' must name one spec (a name or a path)");
  LB_TRY(resolve(L, ext, from, path, sizeof path));
  if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
  for (int i = 0; i < L->depth; i++)
    if (L->chain[i] && strcmp(L->chain[i], real) == 0)
      return lb_yaml_err(L->diag, ext, "extends '%s' makes a cycle (%s is already being "
                                       "loaded)", ext->str, path);
  if (L->depth > LB_SPEC_MAX_EXTENDS)
    return lb_yaml_err(L->diag, ext, "extends chain longer than %d", LB_SPEC_MAX_EXTENDS);
  if (!(L->chain[L->depth] = lb_arena_strdup(L->tmp, real)))
    return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  char *buf;
  size_t len;
  LB_TRY(read_file(path, &buf, &len, L->diag));
  int rc = load_tree(L, path, buf, len, out);
  lb_free(buf);
  return rc;
}

/* Parses file (whose real path is already on the chain) and merges it over its base. */
static int load_tree(loader *L, const char *file, const char *buf, size_t len, lb_ynode **out) {
  static const char *const drop[] = {"extends", NULL};
  lb_ynode *root, *base;
  L->depth++;
  LB_TRY(lb_yaml_parse(L->tmp, file, buf, len, &root, L->diag));
  if (root->kind != LB_YN_MAP)
    return lb_yaml_err(L->diag, root, "a spec is a mapping of keys (name, llvm, isa, ...)");
  /* every file names itself, so a derived spec never silently reuses its base's name */
  if (!lb_yaml_get(root, "name"))
    return lb_yaml_err(L->diag, root, "missing required field 'name' in the spec");
  const lb_ynode *ext = lb_yaml_get(root, "extends");
  if (!ext) {
    *out = root;
  } else {
    LB_TRY(load_base(L, ext, file, &base));
    if (!(*out = lb_yaml_merge(L->tmp, base, root, drop)))
      return lb_diag_err(L->diag, LB_ERR_NOMEM, "out of memory");
  }
  L->depth--;
  return 0;
}

static int load_text(const char *file, const char *real, const char *buf, size_t len,
                     int from_buffer, lb_spec **out, lb_diag *d) {
  lb_arena tmp;
  lb_arena_init(&tmp);
  loader L = {.tmp = &tmp, .diag = d, .from_buffer = from_buffer};
  L.chain[0] = real;
  lb_ynode *root;
  lb_spec *s = NULL;
  int rc = load_tree(&L, file, buf, len, &root);
  if (!rc && !(s = lb_calloc(1, sizeof *s))) rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  if (!rc) {
    lb_arena_init(&s->arena);
    rc = lb_spec_from_tree(root, s, d);
  }
  if (!rc && !(s->source = lb_arena_strdup(&s->arena, file)))
    rc = lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  lb_arena_free(&tmp);
  if (rc) {
    lb_spec_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int lb_spec_load_buffer(const char *data, size_t len, const char *file_name, lb_spec **out,
                        lb_diag *diag) {
  return load_text(file_name, NULL, data, len, 1, out, diag);
}

static int load_file(const char *path, lb_spec **out, lb_diag *d) {
  char real[PATH_MAX], *buf;
  size_t len;
  LB_TRY(read_file(path, &buf, &len, d));
  if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
  int rc = load_text(path, real, buf, len, 0, out, d);
  lb_free(buf);
  return rc;
}

static int unknown_name(const char *name, lb_diag *d) {
  char **names;
  int n = lb_spec_list_names(&names, d);
  if (n < 0) return LB_ERR_INPUT;
  const char *near = lb_did_you_mean(name, (const char *const *)names, (size_t)n);
  char list[512] = "";
  for (int i = 0; i < n && strlen(list) + strlen(names[i]) + 3 < sizeof list; i++)
    strcat(strcat(list, *list ? ", " : ""), names[i]);
  int rc = near ? lb_diag_err(d, LB_ERR_INPUT, "spec '%s': no such bundled spec (did you mean "
                              "'%s'?)", name, near)
                : lb_diag_err(d, LB_ERR_INPUT, "spec '%s': no such bundled spec (bundled: %s, "
                              "or 'host', or a path to a .yaml file)", name, list);
  lb_spec_names_free(names, n);
  return rc;
}

int lb_spec_load(const char *name, lb_spec **out, lb_diag *diag) {
  char path[PATH_MAX];
  if (strcmp(name, "host") == 0) return lb_spec_host_load(out, diag);
  if (is_path(name)) return load_file(name, out, diag);
  if (!*name || strlen(name) > 200 || strchr(name, '.') == name)
    return lb_diag_err(diag, LB_ERR_INPUT, "spec '%s': not a spec name", name);
  snprintf(path, sizeof path, "%s/%s.yaml", lb_spec_dir(), name);
  if (!file_exists(path)) return unknown_name(name, diag);
  return load_file(path, out, diag);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void lb_spec_names_free(char **names, int n) {
  for (int i = 0; i < n; i++) lb_free(names[i]);
  lb_free(names);
}

int lb_spec_list_names(char ***out, lb_diag *d) {
  DIR *dir = opendir(lb_spec_dir());
  if (!dir) return lb_diag_err(d, LB_ERR_INPUT, "%s: error: cannot open the spec directory: %s",
                               lb_spec_dir(), strerror(errno)), -1;
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (!ends_with(e->d_name, ".yaml") || e->d_name[0] == '.') continue;
    if (n == cap) {
      char **nn = lb_realloc(names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    size_t len = strlen(e->d_name) - 5;
    if (!(names[n] = lb_malloc(len + 1))) break;
    memcpy(names[n], e->d_name, len);
    names[n++][len] = 0;
  }
  int failed = e != NULL;
  closedir(dir);
  if (failed) {
    lb_spec_names_free(names, n);
    return lb_diag_err(d, LB_ERR_NOMEM, "out of memory"), -1;
  }
  if (n) qsort(names, (size_t)n, sizeof *names, cmp_names);
  *out = names;
  return n;
}

/* ---- writing (lowbit spec show) --------------------------------------------------------- */

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

/* Shortest of %.15g / %.17g that reads back to the same double. */
static void put_num(FILE *f, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
  fputs(buf, f);
}

static void put_set(FILE *f, unsigned set, const char *a, const char *b) {
  if (set == 1) fputs(a, f);
  else if (set == 2) fputs(b, f);
  else fprintf(f, "[%s, %s]", a, b);
}

static void write_combo(FILE *f, lb_spec_opkind k, const lb_spec_combo *c) {
  fprintf(f, "    %s: {act: %s, ", c->label, lb_dtype_name(c->act));
  if (lb_spec_opkind_has_weight(k)) fprintf(f, "weight: %s, ", lb_dtype_name(c->weight));
  fprintf(f, "acc: %s, out: %s,\n      ", lb_dtype_name(c->acc), lb_dtype_name(c->out));
  if (!lb_dtype_is_float(c->act)) {
    fputs("granularity: ", f);
    put_set(f, c->granularity, "per_tensor", "per_channel");
    fputs(", act_scheme: ", f);
    put_set(f, c->act_scheme, "symmetric", "asymmetric");
    if (c->weight_scheme) {
      fputs(", weight_scheme: ", f);
      put_set(f, c->weight_scheme, "symmetric", "asymmetric");
    }
    fprintf(f, ",\n      narrow_range: %s, requantize: %s, ", c->narrow_range ? "true" : "false",
            lb_requant_name(c->requant));
  }
  fprintf(f, "kernel: %s,\n      ", lb_spec_kernel_name(c->kernel));
  if (c->macs_per_cycle > 0) {
    fputs("macs_per_cycle: ", f);
    put_num(f, c->macs_per_cycle);
    fputs(", ", f);
  }
  fputs("efficiency: ", f);
  put_num(f, c->efficiency);
  fputs(", elements_per_cycle: ", f);
  put_num(f, c->elements_per_cycle);
  fputs("}\n", f);
}

static void write_host(FILE *f, const lb_spec *s) {
  fprintf(f, "host:\n  arch: %s\n  cpu: %s\n  requires: [", s->host_arch, s->host_cpu);
  for (size_t i = 0; i < s->n_requires; i++)
    fprintf(f, "%s%s", i ? ", " : "", s->host_requires[i]);
  fputs("]\n", f);
  if (s->n_match) {
    fputs("  cpuinfo:\n", f);
    for (size_t i = 0; i < s->n_match; i++) {
      fputs("    ", f);
      put_str(f, s->host_match[2 * i]);
      fputs(": ", f);
      put_str(f, s->host_match[2 * i + 1]);
      fputc('\n', f);
    }
  }
}

void lb_spec_write(const lb_spec *s, FILE *f) {
  fprintf(f, "# %s with extends resolved and defaults made explicit\n", s->source);
  fprintf(f, "name: %s\ndescription: ", s->name);
  put_str(f, s->description);
  fprintf(f, "\nllvm:\n  triple: %s\n  cpu: %s\n  features: ", s->triple, s->cpu);
  put_str(f, s->features);
  fputc('\n', f);
  if (s->host_arch) write_host(f, s);
  fprintf(f, "isa:\n  token: %s\n  vector_bits: %d\n  vector_registers: %d\nclock_ghz: ", s->isa,
          s->vector_bits, s->vector_registers);
  put_num(f, s->clock_ghz);
  fputs("\nmemory:\n", f);
  for (int l = 0; l < s->n_levels; l++) {
    fprintf(f, "  l%d: {size_kib: %lld, bytes_per_cycle: ", l + 1,
            (long long)(s->mem[l].bytes / 1024));
    put_num(f, s->mem[l].bytes_per_cycle);
    fputs("}\n", f);
  }
  fputs("  dram: {bytes_per_cycle: ", f);
  put_num(f, s->dram_bytes_per_cycle);
  fputs("}\nops:\n", f);
  for (int k = 0; k < LB_SPEC_OPKIND_COUNT; k++) {
    if (!s->combos[k]) continue; /* never declared (an emptied kind is written as {}) */
    fprintf(f, "  %s:%s\n", kinds[k].name, s->n_combos[k] ? "" : " {}");
    for (size_t i = 0; i < s->n_combos[k]; i++) write_combo(f, (lb_spec_opkind)k, &s->combos[k][i]);
  }
}

/* ---- diagnostics with the source line ---------------------------------------------------- */

/* Splits "FILE:LINE:COL: error: ..." into its parts; 0 on success. */
static int locate(const char *msg, char *file, size_t cap, long *line, long *col) {
  const char *e = strstr(msg, ": error: ");
  if (!e) return -1;
  const char *p = e;
  while (p > msg && p[-1] >= '0' && p[-1] <= '9') p--;
  if (p == e || p == msg || p[-1] != ':') return -1;
  *col = strtol(p, NULL, 10);
  const char *q = --p;
  while (p > msg && p[-1] >= '0' && p[-1] <= '9') p--;
  if (p == q || p == msg || p[-1] != ':') return -1;
  *line = strtol(p, NULL, 10);
  size_t n = (size_t)(p - 1 - msg);
  if (n >= cap) return -1;
  memcpy(file, msg, n);
  file[n] = 0;
  return 0;
}

void lb_spec_print_diag(FILE *f, const lb_diag *d) {
  char file[PATH_MAX], text[4096];
  long line, col;
  fprintf(f, "%s\n", d->msg);
  if (locate(d->msg, file, sizeof file, &line, &col) != 0 || line < 1 || col < 1) return;
  FILE *src = fopen(file, "rb");
  if (!src) return;
  long at = 1;
  int found = 0;
  while (!found && fgets(text, sizeof text, src)) {
    found = at == line;
    if (!strchr(text, '\n') && !feof(src)) { /* skip the rest of an over-long line */
      int c;
      while ((c = fgetc(src)) != EOF && c != '\n') {}
    }
    at++;
  }
  fclose(src);
  if (!found) return;
  text[strcspn(text, "\r\n")] = 0;
  fprintf(f, "  %s\n  ", text);
  /* libyaml counts columns in characters: skip UTF-8 continuation bytes, keep tabs */
  long c = 1;
  for (const char *p = text; *p && c < col; p++) {
    if (((unsigned char)*p & 0xC0) == 0x80) continue;
    fputc(*p == '\t' ? '\t' : ' ', f);
    c++;
  }
  fputs("^\n", f);
}
