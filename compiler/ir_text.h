/* Helpers around the textual IR (ir_text.c) beyond lb_graph_print/lb_graph_parse in ir.h:
 * printing a located diagnostic with its source line and a caret. A located message has the
 * form "NAME:LINE:COL: error: ..." (LINE and COL count from 1). */
#ifndef LB_IR_TEXT_H
#define LB_IR_TEXT_H

#include "ir.h"

/* Finds LINE and COL in a "NAME:LINE:COL: error: ..." message; 0 if found, -1 otherwise. */
int lb_diag_location(const lb_diag *d, int *line, int *col);
/* Prints d's message on one line, then (when text is non-NULL and the message is located) the
 * source line and a caret under the column. */
void lb_diag_print_source(FILE *f, const lb_diag *d, const char *text);

#endif
