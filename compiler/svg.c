/* The Pareto plot of a precision search as a hand-written SVG: modeled (or, with --measure,
 * measured) latency (x) against quality (y) for every evaluated assignment, the Pareto front
 * joined by a line, the all-int8 and fp32 references labelled and the chosen point ringed.
 * Invariant: the file is written to a temporary name and renamed, so a failed write leaves no
 * partial plot. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "search.h"

enum { W = 640, H = 420, L = 70, R = 20, T = 40, B = 50 };

typedef struct frame {
  double x0, x1, y0, y1;
} frame;

static double px(const frame *f, double x) { return L + (x - f->x0) / (f->x1 - f->x0) * (W - L - R); }
static double py(const frame *f, double y) { return H - B - (y - f->y0) / (f->y1 - f->y0) * (H - T - B); }

static void bounds(const lb_search *s, frame *f) {
  f->x0 = INFINITY, f->x1 = -INFINITY, f->y0 = INFINITY, f->y1 = -INFINITY;
  for (uint32_t i = 0; i < lb_search_n_points(s); i++) {
    const lb_search_point *p = lb_search_point_at(s, i);
    double x = lb_search_ms(s, p->cycles);
    f->x0 = fmin(f->x0, x), f->x1 = fmax(f->x1, x);
    f->y0 = fmin(f->y0, p->score.quality), f->y1 = fmax(f->y1, p->score.quality);
  }
  double dx = f->x1 - f->x0, dy = f->y1 - f->y0;
  if (!(dx > 0)) dx = f->x1 > 0 ? f->x1 : 1;
  if (!(dy > 0)) dy = 1;
  f->x0 -= 0.05 * dx, f->x1 += 0.05 * dx, f->y0 -= 0.08 * dy, f->y1 += 0.08 * dy;
}

static void axes(FILE *o, const frame *f, const char *title, int measured) {
  fprintf(o, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
  fprintf(o, "<text x=\"%d\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">", W / 2);
  for (const char *c = title; *c; c++) /* escape for XML */
    if (*c == '<') fputs("&lt;", o);
    else if (*c == '>') fputs("&gt;", o);
    else if (*c == '&') fputs("&amp;", o);
    else fputc(*c, o);
  fputs("</text>\n", o);
  fprintf(o, "<path d=\"M%d %d V%d H%d\" stroke=\"black\" fill=\"none\"/>\n", L, T, H - B, W - R);
  for (int i = 0; i <= 4; i++) {
    double xv = f->x0 + (f->x1 - f->x0) * i / 4, yv = f->y0 + (f->y1 - f->y0) * i / 4;
    fprintf(o, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.4g</text>\n",
            px(f, xv), H - B + 16, xv);
    fprintf(o, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.1f</text>\n",
            L - 6, py(f, yv) + 4, yv);
  }
  fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s latency (ms)</text>\n",
          (W + L - R) / 2, H - 12, measured ? "measured" : "modeled");
  fprintf(o, "<text x=\"16\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">quality (%%)</text>\n",
          (H + T - B) / 2, (H + T - B) / 2);
}

/* The front, cheapest first, as one polyline. */
static void front(FILE *o, const lb_search *s, const frame *f) {
  fputs("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"", o);
  double last = -1;
  for (;;) {
    const lb_search_point *nx = NULL;
    for (uint32_t i = 0; i < lb_search_n_points(s); i++) {
      const lb_search_point *p = lb_search_point_at(s, i);
      if (p->pareto && p->cycles > last && (!nx || p->cycles < nx->cycles)) nx = p;
    }
    if (!nx) break;
    last = nx->cycles;
    fprintf(o, "%.1f,%.1f ", px(f, lb_search_ms(s, nx->cycles)), py(f, nx->score.quality));
  }
  fputs("\"/>\n", o);
}

static void points(FILE *o, const lb_search *s, const frame *f) {
  const lb_search_point *i8 = lb_search_int8(s), *fp = lb_search_fp32(s);
  for (uint32_t i = 0; i < lb_search_n_points(s); i++) {
    const lb_search_point *p = lb_search_point_at(s, i);
    double x = px(f, lb_search_ms(s, p->cycles)), y = py(f, p->score.quality);
    fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, y,
            p->pareto ? "#1f77b4" : "#bbbbbb");
    if (p == i8 || p == fp)
      fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n", x + 6, y - 6,
              p == i8 ? "int8" : "fp32");
    if (p->chosen)
      fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
                 "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#d62728\">chosen</text>\n",
              x, y, x + 10, y + 14);
  }
}

int lb_svg_pareto(const lb_search *s, const char *title, const char *path, lb_diag *d) {
  size_t len = strlen(path);
  char *tmp = lb_malloc(len + 24);
  if (!tmp) return lb_diag_err(d, LB_ERR_NOMEM, "out of memory");
  snprintf(tmp, len + 24, "%s.tmp%ld", path, (long)getpid());
  FILE *o = fopen(tmp, "w");
  int rc = 0;
  if (!o) {
    rc = lb_diag_err(d, LB_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
  } else {
    frame f;
    bounds(s, &f);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
            W, H, W, H);
    axes(o, &f, title, lb_search_measured(s));
    front(o, s, &f);
    points(o, s, &f);
    fputs("</svg>\n", o);
    int bad = ferror(o);
    if (fclose(o) != 0 || bad || rename(tmp, path) != 0) {
      rc = lb_diag_err(d, LB_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
      remove(tmp);
    }
  }
  lb_free(tmp);
  return rc;
}
