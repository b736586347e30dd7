/* YAML to lb_ynode trees on libyaml's event parser: one document, located nodes, duplicate keys
 * rejected, aliases shared (an anchor is usable only once its node is complete, so trees stay
 * acyclic), nesting bounded by LB_SPEC_MAX_DEPTH so every walk over a tree is shallow.
 * Also the recursive merge used by `extends` and the "did you mean" helpers. */
#include <stdarg.h>
#include <string.h>
#include <yaml.h>

#include "spec_int.h"

/* Messages quote user text, which may hold newlines (multi-line scalars): escape control
 * characters so that a diagnostic stays one line. */
int lb_yaml_err(lb_diag *d, const lb_ynode *n, const char *fmt, ...) {
  char msg[768], clean[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t j = 0;
  for (const char *p = msg; *p && j + 5 < sizeof clean; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '\n') clean[j++] = '\\', clean[j++] = 'n';
    else if (c < 0x20 || c == 0x7f) j += (size_t)snprintf(clean + j, 5, "\\x%02x", c);
    else clean[j++] = (char)c;
  }
  clean[j] = 0;
  return lb_diag_err(d, LB_ERR_INPUT, "%s:%d:%d: error: %s", n->file, n->line, n->col, clean);
}

int lb_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 100;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

const char *lb_did_you_mean(const char *word, const char *const *cands, size_t n) {
  const char *best = NULL;
  int best_d = 100;
  for (size_t i = 0; i < n; i++) {
    if (!cands[i]) continue;
    int d = lb_edit_distance(word, cands[i]);
    if (d < best_d) best_d = d, best = cands[i];
  }
  size_t len = strlen(word);
  int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
  return best_d <= limit ? best : NULL;
}

const lb_ynode *lb_yaml_get(const lb_ynode *map, const char *key) {
  if (!map || map->kind != LB_YN_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->key[i]->str, key) == 0) return map->val[i];
  return NULL;
}

/* ---- building the tree from events ------------------------------------------------------ */

typedef struct anchor {
  const char *name;
  lb_ynode *node;
} anchor;

typedef struct builder {
  lb_arena *a;
  const char *file;
  lb_diag *diag;
  lb_ynode *stack[LB_SPEC_MAX_DEPTH];
  const char *pending_anchor[LB_SPEC_MAX_DEPTH]; /* anchor of each open container */
  int depth;
  anchor *anchors;
  size_t n_anchors, cap_anchors;
  lb_ynode *root;
  int docs;
} builder;

static int oom(builder *b) { return lb_diag_err(b->diag, LB_ERR_NOMEM, "out of memory"); }

static lb_ynode *new_node(builder *b, lb_yn_kind kind, yaml_mark_t m) {
  lb_ynode *n = lb_arena_alloc(b->a, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->file = b->file;
  n->line = (int)m.line + 1;
  n->col = (int)m.column + 1;
  return n;
}

/* Appends to a node's arrays, doubling in the arena (the old arrays stay as garbage). */
static int push_item(builder *b, lb_ynode *parent, lb_ynode *child, int as_key) {
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? 2 * parent->cap : 8;
    lb_ynode **val = lb_arena_array(b->a, cap, sizeof *val);
    lb_ynode **key = parent->kind == LB_YN_MAP ? lb_arena_array(b->a, cap, sizeof *key) : NULL;
    if (!val || (parent->kind == LB_YN_MAP && !key)) return oom(b);
    if (parent->n) memcpy(val, parent->val, parent->n * sizeof *val);
    if (key && parent->n) memcpy(key, parent->key, parent->n * sizeof *key);
    parent->val = val, parent->key = key, parent->cap = cap;
  }
  if (as_key)
    parent->key[parent->n] = child; /* its value comes with the next event */
  else
    parent->val[parent->n++] = child;
  return 0;
}

/* Attaches a finished or opened node to the open container on top of the stack. A map slot
 * whose key is set but whose value is not yet is marked by key[n] != NULL with val[n] NULL. */
static int attach(builder *b, lb_ynode *n) {
  if (b->depth == 0) {
    if (b->root) return lb_yaml_err(b->diag, n, "a spec holds one YAML document");
    b->root = n;
    return 0;
  }
  lb_ynode *p = b->stack[b->depth - 1];
  if (p->kind == LB_YN_SEQ) return push_item(b, p, n, 0);
  int want_key = p->n == p->cap || p->key[p->n] == NULL;
  if (!want_key) return push_item(b, p, n, 0);
  if (n->kind != LB_YN_SCALAR) return lb_yaml_err(b->diag, n, "mapping keys must be plain words");
  if (p->n >= LB_SPEC_MAX_KEYS)
    return lb_yaml_err(b->diag, n, "more than %d keys in one mapping", LB_SPEC_MAX_KEYS);
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->key[i]->str, n->str) == 0)
      return lb_yaml_err(b->diag, n, "duplicate key '%s' (first at line %d)", n->str,
                         p->key[i]->line);
  return push_item(b, p, n, 1);
}

static int add_anchor(builder *b, const char *name, lb_ynode *n) {
  if (!name) return 0;
  if (b->n_anchors == b->cap_anchors) {
    size_t cap = b->cap_anchors ? 2 * b->cap_anchors : 8;
    anchor *na = lb_arena_array(b->a, cap, sizeof *na);
    if (!na) return oom(b);
    if (b->n_anchors) memcpy(na, b->anchors, b->n_anchors * sizeof *na);
    b->anchors = na, b->cap_anchors = cap;
  }
  /* a redefined anchor shadows the earlier one, as YAML says */
  b->anchors[b->n_anchors].name = name;
  b->anchors[b->n_anchors++].node = n;
  return 0;
}

static const char *copy_str(builder *b, const yaml_char_t *s) {
  return s ? lb_arena_strdup(b->a, (const char *)s) : NULL;
}

static int on_scalar(builder *b, const yaml_event_t *e) {
  lb_ynode *n = new_node(b, LB_YN_SCALAR, e->start_mark);
  if (!n) return oom(b);
  n->str = lb_arena_array(b->a, e->data.scalar.length + 1, 1);
  if (!n->str) return oom(b);
  if (memchr(e->data.scalar.value, 0, e->data.scalar.length))
    return lb_yaml_err(b->diag, n, "NUL character in a scalar");
  memcpy((char *)n->str, e->data.scalar.value, e->data.scalar.length);
  n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  LB_TRY(attach(b, n));
  const char *anchor_name = copy_str(b, e->data.scalar.anchor);
  if (e->data.scalar.anchor && !anchor_name) return oom(b);
  return add_anchor(b, anchor_name, n);
}

static int on_alias(builder *b, const yaml_event_t *e) {
  const char *name = (const char *)e->data.alias.anchor;
  for (size_t i = b->n_anchors; i-- > 0;)
    if (strcmp(b->anchors[i].name, name) == 0) return attach(b, b->anchors[i].node);
  lb_ynode where = {.file = b->file,
                    .line = (int)e->start_mark.line + 1,
                    .col = (int)e->start_mark.column + 1};
  return lb_yaml_err(b->diag, &where, "unknown anchor '%s' (an alias must follow its anchor's "
                                      "complete node)", name);
}

static int on_start(builder *b, const yaml_event_t *e, lb_yn_kind kind) {
  lb_ynode *n = new_node(b, kind, e->start_mark);
  if (!n) return oom(b);
  if (b->depth == LB_SPEC_MAX_DEPTH)
    return lb_yaml_err(b->diag, n, "nesting deeper than %d levels", LB_SPEC_MAX_DEPTH);
  LB_TRY(attach(b, n));
  const yaml_char_t *an =
      kind == LB_YN_MAP ? e->data.mapping_start.anchor : e->data.sequence_start.anchor;
  b->pending_anchor[b->depth] = copy_str(b, an);
  if (an && !b->pending_anchor[b->depth]) return oom(b);
  b->stack[b->depth++] = n;
  return 0;
}

static int on_end(builder *b) {
  LB_ASSERT(b->depth > 0);
  b->depth--;
  return add_anchor(b, b->pending_anchor[b->depth], b->stack[b->depth]);
}

static int on_event(builder *b, const yaml_event_t *e) {
  switch (e->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (b->docs++ > 0) {
      lb_ynode where = {.file = b->file,
                        .line = (int)e->start_mark.line + 1,
                        .col = (int)e->start_mark.column + 1};
      return lb_yaml_err(b->diag, &where, "a spec holds one YAML document");
    }
    return 0;
  case YAML_SCALAR_EVENT: return on_scalar(b, e);
  case YAML_ALIAS_EVENT: return on_alias(b, e);
  case YAML_MAPPING_START_EVENT: return on_start(b, e, LB_YN_MAP);
  case YAML_SEQUENCE_START_EVENT: return on_start(b, e, LB_YN_SEQ);
  case YAML_MAPPING_END_EVENT:
  case YAML_SEQUENCE_END_EVENT: return on_end(b);
  default: return 0;
  }
}

static int syntax_error(builder *b, const yaml_parser_t *p) {
  yaml_mark_t m = p->problem ? p->problem_mark : p->mark;
  lb_ynode where = {.file = b->file, .line = (int)m.line + 1, .col = (int)m.column + 1};
  if (p->error == YAML_MEMORY_ERROR) return oom(b);
  if (p->context)
    return lb_yaml_err(b->diag, &where, "YAML syntax: %s %s", p->problem ? p->problem : "error",
                       p->context);
  return lb_yaml_err(b->diag, &where, "YAML syntax: %s", p->problem ? p->problem : "error");
}

int lb_yaml_parse(lb_arena *a, const char *file, const char *buf, size_t len, lb_ynode **out,
                  lb_diag *diag) {
  builder b = {.a = a, .file = lb_arena_strdup(a, file), .diag = diag};
  if (!b.file) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory");
  if (len > LB_SPEC_MAX_BYTES)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: error: larger than %d bytes", file,
                       LB_SPEC_MAX_BYTES);
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) return oom(&b);
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  int rc = 0, done = 0;
  while (!rc && !done) {
    yaml_event_t e;
    if (!yaml_parser_parse(&p, &e)) {
      rc = syntax_error(&b, &p);
      break;
    }
    done = e.type == YAML_STREAM_END_EVENT;
    rc = on_event(&b, &e);
    yaml_event_delete(&e);
  }
  yaml_parser_delete(&p);
  if (rc) return rc;
  if (!b.root) {
    lb_ynode where = {.file = b.file, .line = 1, .col = 1};
    return lb_yaml_err(diag, &where, "empty spec");
  }
  *out = b.root;
  return 0;
}

/* ---- merging ---------------------------------------------------------------------------- */

static int dropped(const char *key, const char *const *drop) {
  for (; drop && *drop; drop++)
    if (strcmp(key, *drop) == 0) return 1;
  return 0;
}

static size_t find_key(const lb_ynode *map, const char *key) {
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->key[i]->str, key) == 0) return i;
  return map->n;
}

static lb_ynode *merge(lb_arena *a, const lb_ynode *base, const lb_ynode *over,
                       const char *const *drop, int depth);

lb_ynode *lb_yaml_merge(lb_arena *a, const lb_ynode *base, const lb_ynode *over,
                        const char *const *drop) {
  return merge(a, base, over, drop, 0);
}

static lb_ynode *merge(lb_arena *a, const lb_ynode *base, const lb_ynode *over,
                       const char *const *drop, int depth) {
  /* Aliases can stack trees deeper than LB_SPEC_MAX_DEPTH; the schema reads nothing below
   * depth 6, so past that the override simply replaces and the recursion stays bounded. */
  if (base->kind != LB_YN_MAP || over->kind != LB_YN_MAP || depth > 2 * LB_SPEC_MAX_DEPTH)
    return (lb_ynode *)over;
  lb_ynode *m = lb_arena_alloc(a, sizeof *m);
  size_t cap = base->n + over->n + 1;
  if (!m) return NULL;
  *m = *over;
  m->key = lb_arena_array(a, cap, sizeof *m->key);
  m->val = lb_arena_array(a, cap, sizeof *m->val);
  if (!m->key || !m->val) return NULL;
  m->n = 0, m->cap = cap;
  /* base keys first (keeps the base's order), overridden in place */
  for (size_t i = 0; i < base->n; i++) {
    if (dropped(base->key[i]->str, drop)) continue;
    size_t j = find_key(over, base->key[i]->str);
    lb_ynode *v = j < over->n ? merge(a, base->val[i], over->val[j], NULL, depth + 1)
                              : base->val[i];
    if (!v) return NULL;
    m->key[m->n] = j < over->n ? over->key[j] : base->key[i];
    m->val[m->n++] = v;
  }
  for (size_t i = 0; i < over->n; i++) {
    if (dropped(over->key[i]->str, drop) || find_key(base, over->key[i]->str) < base->n)
      continue;
    m->key[m->n] = over->key[i];
    m->val[m->n++] = over->val[i];
  }
  return m;
}
