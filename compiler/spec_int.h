/* Internals shared by the spec loader files (spec.c, spec_yaml.c, spec_schema.c, spec_host.c);
 * nothing outside compiler/spec*.c includes this. A YAML document becomes a tree of lb_ynode
 * in an arena; every node keeps the file, line and column it came from, so errors found after
 * `extends` merging still point at the file that wrote the value. Trees are never mutated
 * after parsing (aliases share nodes); merging builds new map nodes. */
#ifndef LB_SPEC_INT_H
#define LB_SPEC_INT_H

#include "spec.h"

#define LB_SPEC_MAX_BYTES (1 << 20) /* a spec is a page of YAML; refuse anything over 1 MiB */
#define LB_SPEC_MAX_DEPTH 32        /* YAML nesting limit (the schema needs 6) */
#define LB_SPEC_MAX_EXTENDS 8       /* longest extends chain */
#define LB_SPEC_MAX_KEYS 1024       /* keys per mapping (keeps duplicate checks cheap) */

typedef enum { LB_YN_SCALAR, LB_YN_MAP, LB_YN_SEQ } lb_yn_kind;

typedef struct lb_ynode lb_ynode;
struct lb_ynode {
  lb_yn_kind kind;
  const char *file;
  int line, col;   /* 1-based */
  int plain;       /* scalar written without quotes: only plain scalars are numbers or booleans */
  const char *str; /* scalar text */
  size_t n, cap;   /* map: key/value pairs; seq: items (in val) */
  lb_ynode **key;  /* map keys (scalars) */
  lb_ynode **val;  /* map values, sequence items */
};

/* Parses one YAML document. Errors: "FILE:LINE:COL: error: ..." with LB_ERR_INPUT. */
int lb_yaml_parse(lb_arena *a, const char *file, const char *buf, size_t len, lb_ynode **out,
                  lb_diag *diag);
/* Value of key in a map node, NULL if absent. */
const lb_ynode *lb_yaml_get(const lb_ynode *map, const char *key);
/* Recursive merge: maps merge key by key, anything else in over replaces base. Keys listed in
 * drop (NULL-terminated) are left out of over's top level. Returns NULL on OOM. */
lb_ynode *lb_yaml_merge(lb_arena *a, const lb_ynode *base, const lb_ynode *over,
                        const char *const *drop);
/* Sets diag to "FILE:LINE:COL: error: MSG" located at node n; returns LB_ERR_INPUT. */
int lb_yaml_err(lb_diag *d, const lb_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Edit distance, capped at 100 (for "did you mean"). */
int lb_edit_distance(const char *a, const char *b);
/* The candidate nearest to word if it is close enough to be a likely typo, else NULL. */
const char *lb_did_you_mean(const char *word, const char *const *cands, size_t n);

/* The spec proper. Combos and strings live in the spec's arena. */
struct lb_spec {
  lb_arena arena;
  const char *name, *description, *source;
  const char *triple, *cpu, *features;
  const char *isa;
  int vector_bits, vector_registers;
  double clock_ghz;
  int n_levels; /* cache levels present: 1..3 */
  lb_spec_mem mem[3];
  double dram_bytes_per_cycle;
  const char *host_arch, *host_cpu;
  const char **host_requires;
  size_t n_requires;
  const char **host_match; /* cpuinfo field/value pairs: [2*i] field, [2*i+1] value */
  size_t n_match;
  lb_spec_combo *combos[LB_SPEC_OPKIND_COUNT];
  size_t n_combos[LB_SPEC_OPKIND_COUNT];
  int is_host;
};

/* Detects this machine and returns its host spec (spec_host.c; lb_spec_load("host")). */
int lb_spec_host_load(lb_spec **out, lb_diag *diag);

/* Validates a merged tree against the schema and fills s (whose arena is initialised). */
int lb_spec_from_tree(const lb_ynode *root, lb_spec *s, lb_diag *diag);

#endif
