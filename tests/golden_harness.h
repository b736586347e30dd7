/* Golden-file harness for graph transformations (header-only; include it from a test).
 * A golden file has sections, each opened by a line of its own:
 *   (free comment lines)  # input  <textual IR>  # passes: a,b  # expect  <textual IR or "error: ...">
 * The input is parsed, the caller's pipeline runs with the passes line, the result is printed
 * and compared with the expect section. LB_UPDATE_GOLDEN=1 rewrites the expect section instead
 * (atomically: temp file + rename). Parse errors keep the golden file's own line numbers. */
#ifndef LB_GOLDEN_HARNESS_H
#define LB_GOLDEN_HARNESS_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* The transformation under test; passes is the "# passes:" list (may be ""). */
typedef int (*lb_golden_pipeline)(lb_graph *g, const char *passes, void *user, lb_diag *diag);

/* Constants up to this many elements print inline in golden output. */
#define LB_GOLDEN_INLINE_LIMIT 4096

static char *lb_golden_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
    n += got;
    if (cap - n - 1 == 0) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (buf) buf[n] = 0;
  *len = n;
  return buf;
}

/* Finds a line that starts with head (at a line start); returns its offset or -1. */
static long lb_golden_find(const char *text, const char *head) {
  size_t hn = strlen(head);
  for (const char *s = text; *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s))
    if (strncmp(s, head, hn) == 0 && (s[hn] == '\n' || s[hn] == 0 || head[hn - 1] == ':'))
      return (long)(s - text);
  return -1;
}

static int lb_golden_line_of(const char *text, long off) {
  int line = 1;
  for (long i = 0; i < off; i++) line += text[i] == '\n';
  return line;
}

static size_t lb_golden_trim(const char *s, size_t n) {
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
  return n;
}

/* Compares; on mismatch writes "path:LINE: ..." about the first differing line into err. */
static int lb_golden_compare(const char *path, const char *file, long exp_off, const char *got,
                             char *err, size_t errcap) {
  const char *exp = file + exp_off;
  size_t en = lb_golden_trim(exp, strlen(exp)), gn = lb_golden_trim(got, strlen(got));
  if (en == gn && memcmp(exp, got, en) == 0) return 0;
  size_t i = 0, line_start = 0;
  while (i < en && i < gn && exp[i] == got[i])
    if (exp[i++] == '\n') line_start = i;
  const char *ee = memchr(exp + line_start, '\n', en - line_start);
  const char *ge = memchr(got + line_start, '\n', gn - line_start);
  int el = ee ? (int)(ee - exp - line_start) : (int)(en - line_start);
  int gl = ge ? (int)(ge - got - line_start) : (int)(gn - line_start);
  snprintf(err, errcap, "%s:%d: golden mismatch (LB_UPDATE_GOLDEN=1 rewrites)\n  expected: %.*s\n  got:      %.*s",
           path, lb_golden_line_of(file, exp_off + (long)line_start), el, exp + line_start, gl,
           got + line_start);
  fprintf(stderr, "---- %s: full output ----\n%s----\n", path, got);
  return 1;
}

static int lb_golden_update(const char *path, const char *file, long exp_off, const char *got,
                            char *err, size_t errcap) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(file, 1, (size_t)exp_off, f) == (size_t)exp_off && fputs(got, f) >= 0;
  if (f && fclose(f)) ok = 0;
  if (!ok || rename(tmp, path)) {
    remove(tmp);
    snprintf(err, errcap, "%s: cannot rewrite the golden file", path);
    return 1;
  }
  return 0;
}

/* Runs the pipeline on the input; the result text (printed graph or "error: MSG") is malloc'd. */
static char *lb_golden_result(const char *path, const char *file, long in_off, long in_end,
                              const char *passes, lb_golden_pipeline fn, void *user) {
  /* blank everything outside the input section so parse errors carry the file's line:col */
  size_t n = strlen(file);
  char *src = malloc(n + 1);
  if (!src) return NULL;
  for (size_t i = 0; i <= n; i++)
    src[i] = ((long)i >= in_off && (long)i < in_end) || file[i] == '\n' || !file[i] ? file[i] : ' ';
  lb_graph *g = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_graph_parse(src, path, &g, &d);
  free(src);
  if (!rc) rc = fn(g, passes, user, &d);
  if (!rc) rc = lb_graph_verify(g, &d);
  char *out = NULL;
  size_t out_n = 0;
  FILE *ms = open_memstream(&out, &out_n);
  if (!ms) {
    lb_graph_free(g);
    return NULL;
  }
  if (rc)
    fprintf(ms, "error: %s\n", d.msg);
  else
    lb_graph_print(g, ms, LB_GOLDEN_INLINE_LIMIT);
  fclose(ms);
  lb_graph_free(g);
  return out;
}

/* Checks one golden file; 0 if it matches (or was rewritten), else 1 with a message in err. */
static int lb_golden_check(const char *path, lb_golden_pipeline fn, void *user, char *err,
                           size_t errcap) {
  size_t len;
  char *file = lb_golden_slurp(path, &len);
  if (!file) return snprintf(err, errcap, "%s: cannot read", path), 1;
  long in = lb_golden_find(file, "# input"), ex = lb_golden_find(file, "# expect");
  long ps = lb_golden_find(file, "# passes:");
  int rc = 1;
  if (in < 0 || ex < 0 || ex < in || (ps >= 0 && (ps < in || ps > ex))) {
    snprintf(err, errcap, "%s: needs '# input', optional '# passes: ...', then '# expect'", path);
    goto done;
  }
  char passes[512] = "";
  if (ps >= 0) {
    const char *s = file + ps + strlen("# passes:"), *e = strchr(s, '\n');
    snprintf(passes, sizeof passes, "%.*s", e ? (int)(e - s) : (int)strlen(s), s);
  }
  long in_body = (long)(strchr(file + in, '\n') - file) + 1;
  long in_end = ps >= 0 ? ps : ex;
  long ex_body = strchr(file + ex, '\n') ? (long)(strchr(file + ex, '\n') - file) + 1 : (long)len;
  char *got = lb_golden_result(path, file, in_body, in_end, passes, fn, user);
  if (!got) {
    snprintf(err, errcap, "%s: out of memory", path);
    goto done;
  }
  const char *upd = getenv("LB_UPDATE_GOLDEN");
  if (upd && strcmp(upd, "1") == 0)
    rc = lb_golden_update(path, file, ex_body, got, err, errcap);
  else
    rc = lb_golden_compare(path, file, ex_body, got, err, errcap);
  free(got);
done:
  free(file);
  return rc;
}

static int lb_golden_cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the DIR/NAME.golden files as malloc'd full paths, sorted; returns the count (0 if none or error). */
static int lb_golden_list(const char *dir, char ***paths) {
  *paths = NULL;
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (l < 8 || strcmp(e->d_name + l - 7, ".golden") != 0) continue;
    if (n == cap) {
      char **np = realloc(*paths, (size_t)(cap = cap ? cap * 2 : 16) * sizeof *np);
      if (!np) break;
      *paths = np;
    }
    size_t need = strlen(dir) + l + 2;
    (*paths)[n] = malloc(need);
    if (!(*paths)[n]) break;
    snprintf((*paths)[n++], need, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (n) qsort(*paths, (size_t)n, sizeof **paths, lb_golden_cmp_names);
  return n;
}

static void lb_golden_list_free(char **paths, int n) {
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
}

/* The check test of a golden folder: at least min_files files, each one passing. */
static void lb_golden_check_dir(const char *dir, int min_files, lb_golden_pipeline fn, void *user) {
  char **paths, err[4096];
  int n = lb_golden_list(dir, &paths);
  ck_assert_int_ge(n, min_files);
  for (int i = 0; i < n; i++)
    ck_assert_msg(lb_golden_check(paths[i], fn, user, err, sizeof err) == 0, "%s", err);
  lb_golden_list_free(paths, n);
}

#endif
