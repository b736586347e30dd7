/* Internals shared by shape inference (shape.c) and the reference interpreter (interp.c,
 * interp_nn.c): node-located errors, the shape check that guards every kernel, and the kernel
 * signature. Invariant: a kernel only runs on tensors that passed lb_shape_check, and it reads
 * the canonical attributes that check returned (never the raw node attributes). */
#ifndef LB_INTERP_IMPL_H
#define LB_INTERP_IMPL_H

#include "ir.h"

/* Formats `graph.node[ID] "NAME" (OP): MSG` into d and returns LB_ERR_INPUT. */
int lb_node_err(const lb_graph *g, uint32_t id, lb_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "f32[1,3,224,224]" into buf. */
void lb_shape_str(char *buf, size_t size, lb_dtype t, int rank, const int64_t *dims);

/* Runs node id's shape rule on concrete tensors and checks that out[] has exactly the shapes
 * and dtypes the rule gives. On success *canon holds the node's canonical attributes. */
int lb_shape_check(const lb_graph *g, uint32_t id, const lb_tensor *in, const lb_tensor *out,
                   lb_attrs *canon, lb_diag *diag);

typedef struct lb_kctx {
  const lb_graph *g;
  uint32_t id;
  const lb_node *n;
  const lb_attrs *a; /* canonical attributes */
  lb_diag *diag;
} lb_kctx;

typedef int (*lb_kernel_fn)(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);

/* Optional input k is given (present in the node and backed by data). */
static inline int lb_kin(const lb_kctx *c, const lb_tensor *in, uint32_t k) {
  return k < c->n->n_in && c->n->in[k] != LB_NONE && in[k].data != NULL;
}

/* Fused epilogue activation (attr.act) applied in place. */
void lb_apply_act(const lb_attrs *a, float *y, int64_t n);

/* C[M,N] = A[M,K] * B[K,N], row-major, float accumulation in ascending k (see interp_nn.c). */
void lb_gemm_f32(const float *A, const float *B, float *C, int64_t M, int64_t K, int64_t N);

/* Neural-network kernels in interp_nn.c (fp32 unless noted). */
int lb_k_conv(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_gemm(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_matmul(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_max_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out); /* f32, u8, i8 */
int lb_k_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_global_avg_pool(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_batchnorm(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_softmax(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);
int lb_k_reduce_mean(const lb_kctx *c, const lb_tensor *in, lb_tensor *out);

#endif
