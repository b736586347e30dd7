/* fp32 GEMM emitter: C = act(A.Bp + bias + res), specialised at emit time on every size and
 * leading dimension. A driver function walks K blocks, M blocks (A rows in L2) and panels, and
 * calls register-tile microkernels (internal functions that LLVM inlines) that keep an MR x NR
 * tile in registers and prefetch the next panel. Invariant: C holds raw partial sums between K
 * blocks; the epilogue (bias, residual, activation) runs exactly once per element, in the last
 * K block. */
#include <stdio.h>
#include <string.h>

#include "kernels.h"

typedef struct gemm_plan {
  lb_gemm_desc d;
  int mr, nr, nv;     /* register tile and vectors per panel row */
  int64_t kc, nkb;    /* K block and number of K blocks */
  int64_t mc;         /* M block, a multiple of mr */
  int64_t panels;     /* ceil(N / NR) */
  int64_t pstride;    /* floats between panels of B: K*NR packed, NR row-major */
  int64_t bk;         /* floats between k rows of B: NR packed, ldb row-major */
  int64_t mfull;      /* rows covered by full tiles */
  int mrem;           /* M % MR */
  int np_main, np_rem; /* panels per microkernel call (full rows, remainder rows) */
  int ku_rem;          /* independent accumulator sets (k split) in the remainder tile */
  int last_cols;      /* valid columns in the last panel, 1..NR */
} gemm_plan;

static int64_t cache_or(const lb_kern_cfg *cfg, int level, int64_t dflt) {
  return cfg->cache[level] > 0 ? cfg->cache[level] : dflt;
}

static void make_plan(const lb_kern_cfg *cfg, const lb_gemm_desc *d, gemm_plan *p) {
  memset(p, 0, sizeof *p);
  p->d = *d;
  lb_kern_gemm_tile(cfg, &p->mr, &p->nr);
  p->nv = p->nr / (cfg->vector_bits / 32);
  /* KC: the KC x NR slice of B gets an eighth of L2 rather than the classic half of L1: L2
   * feeds one B vector per MR FMAs easily, and every extra K block re-reads and re-writes C.
   * Measured on Zen 5 (bench_gemm): 1024^3 at 512 bits went from 24 to 30 FMA/cycle, and
   * AVX2 shapes with K > 1000 gained 10%. MC: half of L2 for the MC x KC block of A. */
  int64_t kc_max = cache_or(cfg, 1, 1 << 20) / 8 / (p->nr * 4);
  int64_t kc_l1 = cache_or(cfg, 0, 32768) / 2 / (p->nr * 4);
  if (kc_max < kc_l1) kc_max = kc_l1;
  if (kc_max < 16) kc_max = 16;
  p->nkb = (d->k + kc_max - 1) / kc_max;
  p->kc = (d->k + p->nkb - 1) / p->nkb;
  p->mc = cache_or(cfg, 1, 1 << 20) / 2 / (p->kc * 4) / p->mr * p->mr;
  if (p->mc < p->mr) p->mc = p->mr;
  p->panels = (d->n + p->nr - 1) / p->nr;
  p->pstride = d->b_rowmajor ? p->nr : d->k * p->nr;
  p->bk = d->b_rowmajor ? d->ldb : p->nr;
  p->mrem = (int)(d->m % p->mr);
  p->mfull = d->m - p->mrem;
  /* Remainder rows: below one full tile (M < MR, e.g. GEMV) they take several panels per call so
   * that about MR*NV accumulators hide the FMA latency; B is read once either way. Otherwise they
   * run right after the full tiles of each panel (while its B slice is hot), one panel per call,
   * with the k range split over ku accumulator sets for the same reason. */
  p->np_main = 1;
  p->np_rem = 1;
  p->ku_rem = 1;
  if (p->mrem && p->mfull == 0) p->np_rem = p->mr / p->mrem;
  else if (p->mrem) p->ku_rem = p->mr / p->mrem >= 4 ? 4 : p->mr / p->mrem >= 2 ? 2 : 1;
  if (p->np_rem > p->panels) p->np_rem = (int)p->panels;
  p->last_cols = (int)(d->n - (p->panels - 1) * p->nr);
}

/* ---- microkernel ------------------------------------------------------------------------- */

/* Column vectors of a microkernel call: np panels of nv vectors, the last panel cut to
 * last_cols columns (vectors past it dropped, the last one masked). */
typedef struct uk_cols {
  int n;
  int64_t boff[64]; /* offset into Bp of the vector at k = 0 */
  int64_t coff[64]; /* column offset in C, bias, res */
  int lanes[64];
} uk_cols;

static void uk_columns(const gemm_plan *p, int vw, int np, int last_cols, uk_cols *c) {
  c->n = 0;
  for (int j = 0; j < np; j++) {
    int cols = j == np - 1 ? last_cols : p->nr;
    for (int v = 0; v * vw < cols; v++) {
      int lanes = cols - v * vw < vw ? cols - v * vw : vw;
      LB_ASSERT(c->n < 64);
      c->boff[c->n] = j * p->pstride + v * vw;
      c->coff[c->n] = (int64_t)j * p->nr + v * vw;
      c->lanes[c->n++] = lanes;
    }
  }
}

enum { UK_A, UK_B, UK_C, UK_BIAS, UK_RES, UK_KC, UK_INIT, UK_FIN, UK_NPARAM };

/* Accumulators at entry: zero on the first K block, else the partial sums stored in C. */
static void uk_init(lb_kir *k, const gemm_plan *p, const uk_cols *c, int mr, LLVMValueRef *acc) {
  LLVMValueRef C = LLVMGetParam(k->fn, UK_C);
  LLVMBasicBlockRef entry = LLVMGetInsertBlock(k->b);
  LLVMBasicBlockRef ld = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "ldc");
  LLVMBasicBlockRef go = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "go");
  LLVMBuildCondBr(k->b, LLVMGetParam(k->fn, UK_INIT), go, ld);
  LLVMPositionBuilderAtEnd(k->b, ld);
  LLVMValueRef loaded[64];
  for (int i = 0; i < mr; i++)
    for (int t = 0; t < c->n; t++)
      loaded[i * c->n + t] = lb_kir_vload(k, lb_kir_gepc(k, C, i * p->d.ldc + c->coff[t]),
                                          c->lanes[t]);
  LLVMBuildBr(k->b, go);
  LLVMPositionBuilderAtEnd(k->b, go);
  LLVMValueRef zero = LLVMConstNull(k->vec);
  LLVMBasicBlockRef from[2] = {entry, ld};
  for (int i = 0; i < mr * c->n; i++) {
    acc[i] = LLVMBuildPhi(k->b, k->vec, "acc");
    LLVMValueRef in[2] = {zero, loaded[i]};
    LLVMAddIncoming(acc[i], in, from, 2);
  }
}

/* Prefetches (into L2) the B row at the same k of the next panel: a full-row tile walks all
 * its M tiles over one panel before moving on, so the next panel's slice, which at batch 1
 * usually comes from DRAM, arrives while this one is still being used. The address may lie past
 * the end of Bp (last panel): a prefetch never faults, and the GEP is not inbounds. */
static void uk_prefetch_next(lb_kir *k, const gemm_plan *p, LLVMValueRef bp) {
  LLVMTypeRef ty = k->ptr;
  unsigned id = LLVMLookupIntrinsicID("llvm.prefetch", 13);
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(k->mod, id, &ty, 1);
  for (int64_t off = 0; off < p->nr; off += 16) {
    LLVMValueRef idx = lb_kir_i64(k, p->pstride + off);
    LLVMValueRef args[4] = {LLVMBuildGEP2(k->b, k->f32, bp, &idx, 1, ""),
                            LLVMConstInt(k->i32, 0, 0), LLVMConstInt(k->i32, 2, 0),
                            LLVMConstInt(k->i32, 1, 0)};
    LLVMBuildCall2(k->b, LLVMIntrinsicGetType(k->ctx, id, &ty, 1), f, args, 4, "");
  }
}

/* One k step: acc[i][t] += A[i][k] * Bp[k][t]. */
static void uk_kstep(lb_kir *k, const gemm_plan *p, const uk_cols *c, int mr, LLVMValueRef kk,
                     const LLVMValueRef *in, LLVMValueRef *out) {
  LLVMValueRef A = LLVMGetParam(k->fn, UK_A), B = LLVMGetParam(k->fn, UK_B);
  LLVMValueRef kb = LLVMBuildNSWMul(k->b, kk, lb_kir_i64(k, p->bk), "");
  LLVMValueRef bp = lb_kir_gep(k, B, kb), ap = lb_kir_gep(k, A, kk);
  LLVMValueRef bv[64];
  int packed = !p->d.b_rowmajor; /* packed panels are zero-padded: whole vectors are safe */
  if (packed && mr == p->mr && p->nr * 4 >= 64) uk_prefetch_next(k, p, bp);
  for (int t = 0; t < c->n; t++)
    bv[t] = lb_kir_vload(k, lb_kir_gepc(k, bp, c->boff[t]), packed ? k->vw : c->lanes[t]);
  for (int i = 0; i < mr; i++) {
    LLVMValueRef s = LLVMBuildLoad2(k->b, k->f32, lb_kir_gepc(k, ap, i * p->d.lda), "");
    LLVMValueRef a = lb_kir_splat(k, s);
    for (int t = 0; t < c->n; t++) out[i * c->n + t] = lb_kir_fma(k, a, bv[t], in[i * c->n + t]);
  }
}

/* acc += A.Bp over k in [0, kc). With ku > 1 the steps k = ku*j + u go to accumulator set u
 * (more independent FMA chains for small tiles), the kc % ku tail to set 0, and the sets are
 * summed at the end. */
static void uk_loop(lb_kir *k, const gemm_plan *p, const uk_cols *c, int mr, int ku,
                    LLVMValueRef *acc) {
  int n = mr * c->n;
  LB_ASSERT(n * ku <= 64);
  LLVMValueRef kc = LLVMGetParam(k->fn, UK_KC), init[64], next[64];
  LLVMValueRef kmain = LLVMBuildAnd(k->b, kc, lb_kir_i64(k, -(int64_t)ku), "");
  for (int u = 0; u < ku; u++)
    for (int i = 0; i < n; i++) init[u * n + i] = u ? LLVMConstNull(k->vec) : acc[i];
  lb_kloop l;
  lb_kloop_begin(k, &l, lb_kir_i64(k, 0), kmain, init, n * ku);
  for (int u = 0; u < ku; u++)
    uk_kstep(k, p, c, mr, LLVMBuildNSWAdd(k->b, l.iv, lb_kir_i64(k, u), ""), l.carry + u * n,
             next + u * n);
  lb_kloop_end(k, &l, lb_kir_i64(k, ku), next);
  for (int i = 0; i < n * ku; i++) init[i] = l.carry[i];
  if (ku > 1) {
    lb_kloop t;
    lb_kloop_begin(k, &t, kmain, kc, init, n);
    uk_kstep(k, p, c, mr, t.iv, t.carry, next);
    lb_kloop_end(k, &t, lb_kir_i64(k, 1), next);
    for (int i = 0; i < n; i++) init[i] = t.carry[i];
  }
  for (int i = 0; i < n; i++) {
    acc[i] = init[i];
    for (int u = 1; u < ku; u++) acc[i] = LLVMBuildFAdd(k->b, acc[i], init[u * n + i], "");
  }
}

/* Stores the tile; with epi set, adds bias and residual and applies the activation first. */
static void uk_store(lb_kir *k, const gemm_plan *p, const uk_cols *c, int mr, LLVMValueRef *acc,
                     int epi) {
  LLVMValueRef C = LLVMGetParam(k->fn, UK_C);
  LLVMValueRef bias = LLVMGetParam(k->fn, UK_BIAS), res = LLVMGetParam(k->fn, UK_RES);
  const lb_gemm_desc *d = &p->d;
  LLVMValueRef bv[64];
  for (int t = 0; epi && d->has_bias && t < c->n; t++)
    bv[t] = lb_kir_vload(k, lb_kir_gepc(k, bias, c->coff[t]), c->lanes[t]);
  for (int i = 0; i < mr; i++)
    for (int t = 0; t < c->n; t++) {
      LLVMValueRef v = acc[i * c->n + t];
      if (epi && d->has_bias) v = LLVMBuildFAdd(k->b, v, bv[t], "");
      if (epi && d->has_res)
        v = LLVMBuildFAdd(k->b, v, lb_kir_vload(k, lb_kir_gepc(k, res, i * d->ldr + c->coff[t]),
                                                c->lanes[t]), "");
      if (epi) v = lb_kir_act(k, v, d->act, d->act_min, d->act_max);
      lb_kir_vstore(k, v, lb_kir_gepc(k, C, i * d->ldc + c->coff[t]), c->lanes[t]);
    }
  LLVMBuildRetVoid(k->b);
}

/* void uk(A, Bp, C, bias, res, i64 kc, i1 init, i1 fin) for an mr x (np panels) tile. */
static LLVMValueRef emit_ukernel(LLVMModuleRef mod, const lb_kern_cfg *cfg, const gemm_plan *p,
                                 const char *base, int mr, int np, int last_cols, int ku) {
  char name[LB_KERN_NAME_MAX + 64];
  lb_kir_name(name, sizeof name, "%s__uk%dx%dp%dc%du", base, mr, np, last_cols, ku);
  lb_kir k;
  LLVMValueRef fn;
  LLVMTypeRef params[UK_NPARAM] = {0};
  LLVMContextRef ctx = LLVMGetModuleContext(mod);
  params[UK_KC] = LLVMInt64TypeInContext(ctx);
  params[UK_INIT] = params[UK_FIN] = LLVMInt1TypeInContext(ctx);
  if (lb_kir_begin(&k, mod, cfg, name, params, UK_NPARAM, 1, &fn)) return fn;
  uk_cols c;
  uk_columns(p, k.vw, np, last_cols, &c);
  LB_ASSERT(mr * c.n <= 64);
  LLVMValueRef acc[64];
  uk_init(&k, p, &c, mr, acc);
  uk_loop(&k, p, &c, mr, ku, acc);
  LLVMBasicBlockRef epi = LLVMAppendBasicBlockInContext(k.ctx, k.fn, "epi");
  LLVMBasicBlockRef raw = LLVMAppendBasicBlockInContext(k.ctx, k.fn, "raw");
  LLVMBuildCondBr(k.b, LLVMGetParam(k.fn, UK_FIN), epi, raw);
  LLVMPositionBuilderAtEnd(k.b, epi);
  uk_store(&k, p, &c, mr, acc, 1);
  LLVMPositionBuilderAtEnd(k.b, raw);
  uk_store(&k, p, &c, mr, acc, 0);
  fn = k.fn;
  lb_kir_end(&k);
  return fn;
}

/* ---- driver ------------------------------------------------------------------------------ */

enum { G_A, G_BP, G_BIAS, G_RES, G_C, G_SCRATCH, G_NPARAM };

/* State of one K block inside the driver. */
typedef struct kblock {
  LLVMValueRef a, b;       /* A + kc0, Bp + kc0*NR */
  LLVMValueRef kc, init, fin;
} kblock;

/* Calls uk for rows m (runtime) and the panel group starting at panel p0 (runtime). */
static void call_uk(lb_kir *k, const gemm_plan *p, const kblock *kb, LLVMValueRef uk,
                    LLVMValueRef m, LLVMValueRef p0) {
  const lb_gemm_desc *d = &p->d;
  LLVMValueRef n0 = LLVMBuildNSWMul(k->b, p0, lb_kir_i64(k, p->nr), "");
  LLVMValueRef C = LLVMGetParam(k->fn, G_C), bias = LLVMGetParam(k->fn, G_BIAS);
  LLVMValueRef res = LLVMGetParam(k->fn, G_RES);
  LLVMValueRef am = LLVMBuildNSWMul(k->b, m, lb_kir_i64(k, d->lda), "");
  LLVMValueRef cm = LLVMBuildNSWMul(k->b, m, lb_kir_i64(k, d->ldc), "");
  LLVMValueRef args[UK_NPARAM];
  args[UK_A] = lb_kir_gep(k, kb->a, am);
  args[UK_B] = lb_kir_gep(k, kb->b, LLVMBuildNSWMul(k->b, p0, lb_kir_i64(k, p->pstride), ""));
  args[UK_C] = lb_kir_gep(k, C, LLVMBuildNSWAdd(k->b, cm, n0, ""));
  args[UK_BIAS] = d->has_bias ? lb_kir_gep(k, bias, n0) : bias;
  if (d->has_res) {
    LLVMValueRef rm = LLVMBuildNSWMul(k->b, m, lb_kir_i64(k, d->ldr), "");
    args[UK_RES] = lb_kir_gep(k, res, LLVMBuildNSWAdd(k->b, rm, n0, ""));
  } else {
    args[UK_RES] = res;
  }
  args[UK_KC] = kb->kc;
  args[UK_INIT] = kb->init;
  args[UK_FIN] = kb->fin;
  LLVMBuildCall2(k->b, LLVMGlobalGetValueType(uk), uk, args, UK_NPARAM, "");
}

/* Row tiles [m_lo, m_hi) step mr, for one panel group. */
static void row_tiles(lb_kir *k, const gemm_plan *p, const kblock *kb, LLVMValueRef uk,
                      LLVMValueRef m_lo, LLVMValueRef m_hi, int mr, LLVMValueRef p0) {
  lb_kloop l;
  lb_kloop_begin(k, &l, m_lo, m_hi, NULL, 0);
  call_uk(k, p, kb, uk, l.iv, p0);
  lb_kloop_end(k, &l, lb_kir_i64(k, mr), NULL);
}

typedef struct uk_set {
  LLVMValueRef main_full, main_last, rem_full, rem_last;
} uk_set;

/* What one walk over the panel groups runs: tiles of mr rows over [m_lo, m_hi), and, when
 * rem_full is set and tail is true at run time, the remainder rows after each group's tiles. */
typedef struct group_walk {
  LLVMValueRef full, last, rem_full, rem_last, tail;
  LLVMValueRef m_lo, m_hi;
  int np, mr;
} group_walk;

static void group(lb_kir *k, const gemm_plan *p, const kblock *kb, const group_walk *w,
                  LLVMValueRef uk, LLVMValueRef rem, LLVMValueRef p0) {
  row_tiles(k, p, kb, uk, w->m_lo, w->m_hi, w->mr, p0);
  if (!w->rem_full) return;
  LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "rem");
  LLVMBasicBlockRef cont = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "cont");
  LLVMBuildCondBr(k->b, w->tail, then, cont);
  LLVMPositionBuilderAtEnd(k->b, then);
  call_uk(k, p, kb, rem, lb_kir_i64(k, p->mfull), p0);
  LLVMBuildBr(k->b, cont);
  LLVMPositionBuilderAtEnd(k->b, cont);
}

/* All panel groups: full groups of np panels in a loop, then the group holding the last
 * (possibly partial) panel. */
static void panel_groups(lb_kir *k, const gemm_plan *p, const kblock *kb, const group_walk *w) {
  int64_t last_np = (p->panels - 1) % w->np + 1;
  int64_t groups = (p->panels - last_np) / w->np;
  if (groups > 0) {
    lb_kloop l;
    lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, groups * w->np), NULL, 0);
    group(k, p, kb, w, w->full, w->rem_full, l.iv);
    lb_kloop_end(k, &l, lb_kir_i64(k, w->np), NULL);
  }
  group(k, p, kb, w, w->last, w->rem_last, lb_kir_i64(k, groups * w->np));
}

/* One K block: M blocks of full-row tiles, each panel followed (in the last M block) by the
 * remainder rows; or, below one full tile, the remainder rows alone. */
static void emit_kblock(lb_kir *k, const gemm_plan *p, const kblock *kb, const uk_set *u) {
  group_walk w = {0};
  if (p->mfull == 0) {
    w = (group_walk){u->rem_full, u->rem_last, NULL, NULL, NULL, lb_kir_i64(k, 0),
                     lb_kir_i64(k, p->d.m), p->np_rem, p->mrem};
    panel_groups(k, p, kb, &w);
    return;
  }
  lb_kloop l;
  lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, p->mfull), NULL, 0);
  LLVMValueRef hi = LLVMBuildNSWAdd(k->b, l.iv, lb_kir_i64(k, p->mc), "");
  hi = lb_kir_min64(k, hi, lb_kir_i64(k, p->mfull));
  w = (group_walk){u->main_full, u->main_last, u->rem_full, u->rem_last, NULL, l.iv, hi,
                   p->np_main, p->mr};
  if (p->mrem) w.tail = LLVMBuildICmp(k->b, LLVMIntEQ, hi, lb_kir_i64(k, p->mfull), "");
  panel_groups(k, p, kb, &w);
  lb_kloop_end(k, &l, lb_kir_i64(k, p->mc), NULL);
}

/* The K-block loop (a single straight-line block when K fits one block). */
static void emit_driver(lb_kir *k, const gemm_plan *p, const uk_set *u) {
  LLVMValueRef A = LLVMGetParam(k->fn, G_A), Bp = LLVMGetParam(k->fn, G_BP);
  kblock kb;
  if (p->nkb == 1) {
    kb = (kblock){A, Bp, lb_kir_i64(k, p->d.k), LLVMConstInt(k->i1, 1, 0),
                  LLVMConstInt(k->i1, 1, 0)};
    emit_kblock(k, p, &kb, u);
    return;
  }
  lb_kloop l;
  lb_kloop_begin(k, &l, lb_kir_i64(k, 0), lb_kir_i64(k, p->d.k), NULL, 0);
  LLVMValueRef left = LLVMBuildNSWSub(k->b, lb_kir_i64(k, p->d.k), l.iv, "");
  kb.kc = lb_kir_min64(k, left, lb_kir_i64(k, p->kc));
  kb.init = LLVMBuildICmp(k->b, LLVMIntEQ, l.iv, lb_kir_i64(k, 0), "");
  kb.fin = LLVMBuildICmp(k->b, LLVMIntSLE, left, lb_kir_i64(k, p->kc), "");
  kb.a = lb_kir_gep(k, A, l.iv);
  kb.b = lb_kir_gep(k, Bp, LLVMBuildNSWMul(k->b, l.iv, lb_kir_i64(k, p->bk), ""));
  emit_kblock(k, p, &kb, u);
  lb_kloop_end(k, &l, lb_kir_i64(k, p->kc), NULL);
}

static int check_desc(const lb_gemm_desc *d, lb_diag *diag) {
  if (d->m <= 0 || d->n <= 0 || d->k <= 0)
    return lb_diag_err(diag, LB_ERR_INPUT, "gemm: empty shape M=%lld N=%lld K=%lld",
                       (long long)d->m, (long long)d->n, (long long)d->k);
  if (d->lda < d->k || d->ldc < d->n || (d->has_res && d->ldr < d->n))
    return lb_diag_err(diag, LB_ERR_INPUT, "gemm: leading dimension smaller than the row "
                       "(lda=%lld K=%lld ldc=%lld ldr=%lld N=%lld)", (long long)d->lda,
                       (long long)d->k, (long long)d->ldc, (long long)d->ldr, (long long)d->n);
  if (d->b_rowmajor && d->ldb < d->n)
    return lb_diag_err(diag, LB_ERR_INPUT, "gemm: ldb=%lld smaller than N=%lld",
                       (long long)d->ldb, (long long)d->n);
  if (d->act == LB_ACT_CLIP && !(d->act_min <= d->act_max))
    return lb_diag_err(diag, LB_ERR_INPUT, "gemm: clip bounds [%g, %g] are empty",
                       (double)d->act_min, (double)d->act_max);
  return LB_OK;
}

int lb_emit_gemm_f32(LLVMModuleRef mod, const lb_kern_cfg *cfg, const lb_gemm_desc *d,
                     lb_kern_out *out, lb_diag *diag) {
  LB_TRY(lb_kern_cfg_check(cfg, diag));
  LB_TRY(check_desc(d, diag));
  gemm_plan p;
  make_plan(cfg, d, &p);
  char name[LB_KERN_NAME_MAX];
  lb_kir_name(name, sizeof name, "lb_f32_f32_gemm_ukernel_%dx%d__%s_m%lldn%lldk%lld_a%lldc%lldr"
              "%lld_b%dr%d_kc%lldmc%lld", p.mr, p.nr, lb_kern_isa(cfg), (long long)d->m,
              (long long)d->n, (long long)d->k, (long long)d->lda, (long long)d->ldc,
              (long long)(d->has_res ? d->ldr : 0), d->has_bias, d->has_res, (long long)p.kc,
              (long long)p.mc);
  if (d->b_rowmajor) { /* B read as a plain row-major matrix at run time */
    size_t len = strlen(name);
    lb_kir_name(name + len, sizeof name - len, "_ldb%lld", (long long)d->ldb);
  }
  lb_kir_act_suffix(name, sizeof name, d->act, d->act_min, d->act_max);
  out->scratch_bytes = 0;
  lb_kir k;
  LLVMTypeRef params[G_NPARAM] = {0};
  if (lb_kir_begin(&k, mod, cfg, name, params, G_NPARAM, 0, &out->fn)) return LB_OK;
  LLVMAddAttributeAtIndex(k.fn, G_C + 1, LLVMCreateEnumAttribute(
      k.ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
  uk_set u = {0};
  int64_t last_np = (p.panels - 1) % p.np_main + 1;
  if (p.mfull > 0) {
    u.main_full = emit_ukernel(mod, cfg, &p, name, p.mr, p.np_main, p.nr, 1);
    u.main_last = emit_ukernel(mod, cfg, &p, name, p.mr, (int)last_np, p.last_cols, 1);
  }
  if (p.mrem > 0) {
    last_np = (p.panels - 1) % p.np_rem + 1;
    u.rem_full = emit_ukernel(mod, cfg, &p, name, p.mrem, p.np_rem, p.nr, p.ku_rem);
    u.rem_last = emit_ukernel(mod, cfg, &p, name, p.mrem, (int)last_np, p.last_cols, p.ku_rem);
  }
  emit_driver(&k, &p, &u);
  LLVMBuildRetVoid(k.b);
  out->fn = k.fn;
  lb_kir_end(&k);
  return LB_OK;
}
