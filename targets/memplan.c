/* Liveness-based placement of intermediate tensors in one workspace buffer. Invariant on
 * return: two buffers whose step intervals [first, last] intersect occupy disjoint byte ranges,
 * every offset is a multiple of the alignment, and total covers every buffer. Greedy: largest
 * buffers first, each into the lowest gap left by the already placed, overlapping ones. */
#include <stdlib.h>

#include "target.h"

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

static int overlaps(const lb_mem_req *a, const lb_mem_req *b) {
  return a->first <= b->last && b->first <= a->last;
}

/* Sort keys: by decreasing size, then by earlier start, so the result is deterministic. */
static const lb_mem_req *g_sort_reqs;
static int by_size_desc(const void *pa, const void *pb) {
  const lb_mem_req *a = &g_sort_reqs[*(const size_t *)pa];
  const lb_mem_req *b = &g_sort_reqs[*(const size_t *)pb];
  if (a->size != b->size) return a->size < b->size ? 1 : -1;
  if (a->first != b->first) return a->first < b->first ? -1 : 1;
  return *(const size_t *)pa < *(const size_t *)pb ? -1 : 1;
}

static const lb_mem_req *g_off_reqs;
static int by_offset(const void *pa, const void *pb) {
  size_t a = g_off_reqs[*(const size_t *)pa].offset, b = g_off_reqs[*(const size_t *)pb].offset;
  return a < b ? -1 : a > b;
}

/* Lowest aligned offset where r fits between the live neighbours listed in nb (by offset). */
static size_t lowest_gap(const lb_mem_req *reqs, const size_t *nb, size_t n_nb, size_t size,
                         size_t align) {
  size_t at = 0;
  for (size_t i = 0; i < n_nb; i++) {
    const lb_mem_req *o = &reqs[nb[i]];
    if (o->offset >= at + size) break;
    size_t end = round_up(o->offset + o->size, align);
    if (end > at) at = end;
  }
  return at;
}

int lb_memplan(lb_mem_req *reqs, size_t n, size_t align, size_t *total) {
  *total = 0;
  if (n == 0) return 0;
  size_t *order = lb_calloc(n, sizeof *order);
  size_t *placed = lb_calloc(n, sizeof *placed);
  size_t *nb = lb_calloc(n, sizeof *nb);
  if (!order || !placed || !nb) {
    lb_free(order), lb_free(placed), lb_free(nb);
    return LB_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) order[i] = i;
  g_sort_reqs = reqs;
  qsort(order, n, sizeof *order, by_size_desc);
  size_t n_placed = 0;
  for (size_t k = 0; k < n; k++) {
    lb_mem_req *r = &reqs[order[k]];
    size_t n_nb = 0;
    for (size_t j = 0; j < n_placed; j++)
      if (overlaps(r, &reqs[placed[j]])) nb[n_nb++] = placed[j];
    g_off_reqs = reqs;
    qsort(nb, n_nb, sizeof *nb, by_offset);
    r->offset = lowest_gap(reqs, nb, n_nb, round_up(r->size, align), align);
    if (round_up(r->offset + r->size, align) > *total)
      *total = round_up(r->offset + r->size, align);
    placed[n_placed++] = order[k];
  }
  lb_free(order), lb_free(placed), lb_free(nb);
  return 0;
}
