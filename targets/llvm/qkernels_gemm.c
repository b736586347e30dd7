/* LLVM emitter of the integer GEMM micro-kernels (one per lb_qk_kind, explicit intrinsics:
 * x86 pmadd.wd / vpdpbusd, AArch64 smull / sdot / smmla / fcvtns) with the requantize and
 * activation fused into the epilogue. Invariant: a tile computes exactly
 * lb_qgemm_packed_ref's int32 accumulators and maps them through lb_requantize(2)'s float
 * steps (sitofp, one fmul, [fmul, fadd], clamp by compare-select, round half to even). */
#include <string.h>

#include "lower.h"
#include "qkernels.h"
#include "quant.h"

static LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
static LLVMTypeRef i16t(lb_lw *L) { return LLVMInt16TypeInContext(L->ctx); }
static int is_arm(const lb_qk_shape *s) {
  return s && (s->kind == LB_QK_SMLAL || s->kind == LB_QK_SDOT || s->kind == LB_QK_SMMLA);
}

static LLVMValueRef call2(lb_lw *L, const char *name, LLVMTypeRef *tys, int nt, LLVMValueRef *a,
                          int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LB_ASSERT(id != 0);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->mod, id, tys, (size_t)nt);
  return LLVMBuildCall2(L->b, LLVMIntrinsicGetType(L->ctx, id, tys, (size_t)nt), fn, a,
                        (unsigned)n, "");
}

/* ---- requantize -------------------------------------------------------------------------- */

static LLVMValueRef fsplat(lb_lw *L, LLVMTypeRef ft, LLVMValueRef v) {
  if (LLVMGetTypeKind(ft) != LLVMVectorTypeKind || LLVMGetTypeKind(LLVMTypeOf(v)) ==
                                                       LLVMVectorTypeKind)
    return v;
  return lb_splat(L, v, (int)LLVMGetVectorSize(ft));
}

LLVMValueRef lb_qrequant(lb_lw *L, const lb_qk_shape *s, LLVMValueRef acc, LLVMValueRef m,
                         LLVMValueRef r, LLVMValueRef mr, int32_t zy, int32_t lo, int32_t hi) {
  if (lb_requant_integer(L->rq)) return lb_qrequant_fixed(L, L->rq, acc, m, r, mr, zy, lo, hi);
  LLVMTypeRef it = LLVMTypeOf(acc), ft = L->t_f32;
  int lanes = LLVMGetTypeKind(it) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(it) : 1;
  if (lanes > 1) ft = vec(L->t_f32, lanes);
  /* no fast-math flags anywhere: LLVM never contracts these into an FMA */
  LLVMValueRef x = LLVMBuildFMul(L->b, LLVMBuildSIToFP(L->b, acc, ft, ""), fsplat(L, ft, m), "");
  if (r) {
    LLVMValueRef y = LLVMBuildFMul(L->b, LLVMBuildSIToFP(L->b, r, ft, ""), fsplat(L, ft, mr), "");
    x = LLVMBuildFAdd(L->b, x, y, "");
  }
  LLVMValueRef flo = lb_cf(L, ft, (float)(lo - zy)), fhi = lb_cf(L, ft, (float)(hi - zy));
  /* lb_requantize: !(x >= lo) -> lo (NaN too), then x > hi -> hi. Written as x > lo ? x : lo
   * (equal values are the same number) so that x86 selects one vmaxps/vminps each. */
  x = LLVMBuildSelect(L->b, LLVMBuildFCmp(L->b, LLVMRealOGT, x, flo, ""), x, flo, "");
  x = LLVMBuildSelect(L->b, LLVMBuildFCmp(L->b, LLVMRealOLT, fhi, x, ""), fhi, x, "");
  LLVMValueRef q;
  if (is_arm(s) && lanes == 4) { /* fcvtns: convert rounding to nearest, ties to even */
    LLVMTypeRef tys[2] = {it, ft};
    q = call2(L, "llvm.aarch64.neon.fcvtns", tys, 2, &x, 1);
  } else if (s && !is_arm(s) && lanes == 8) { /* vcvtps2dq: MXCSR rounding, nearest-even */
    q = lb_intr(L, "llvm.x86.avx.cvt.ps2dq.256", NULL, &x, 1);
  } else if (s && !is_arm(s) && lanes == 16) {
    LLVMValueRef a[4] = {x, LLVMGetUndef(it), LLVMConstInt(LLVMInt16TypeInContext(L->ctx), 0xffff, 0),
                         lb_c32(L, 4)}; /* 4: the current (MXCSR) rounding direction */
    q = lb_intr(L, "llvm.x86.avx512.mask.cvtps2dq.512", NULL, a, 4);
  } else {
    q = LLVMBuildFPToSI(L->b, lb_intr(L, "llvm.nearbyint", ft, &x, 1), it, "");
  }
  return LLVMBuildAdd(L->b, q, lb_ci(L, it, zy), "");
}

/* ---- the k loop -------------------------------------------------------------------------- */

typedef struct tile {
  const lb_qgemm_job *j;
  const lb_qk_shape *s;
  int nv;             /* B vectors per k step */
  LLVMTypeRef acc_t;  /* <lanes x i32> (smmla: <4 x i32> 2x2 blocks) */
  LLVMValueRef acc[64];
  LLVMValueRef arow[16]; /* pointer to each (clamped) A row */
  LLVMValueRef mult[16]; /* multiplier vector per output vector of the tile */
} tile;

/* The B vector type of one k step and its element type. */
static LLVMTypeRef bvec_t(lb_lw *L, const lb_qk_shape *s) {
  if (s->kind == LB_QK_SMMLA) return vec(L->t_i8, 16);
  if (s->wide) return vec(i16t(L), s->lanes * s->kr);
  return vec(L->t_i8, s->lanes * s->kr);
}

/* Activation operand of row r at k: kr consecutive packed values, broadcast to every lane. */
static LLVMValueRef a_operand(lb_lw *L, tile *t, int r, LLVMValueRef k) {
  const lb_qk_shape *s = t->s;
  LLVMTypeRef et = s->wide ? i16t(L) : L->t_i8;
  LLVMValueRef p = lb_gep(L, et, t->arow[r], k);
  switch (s->kind) {
  case LB_QK_SMLAL: return lb_splat(L, lb_load(L, et, p, 2), 4);
  case LB_QK_SMMLA: {
    LLVMValueRef p1 = lb_gep(L, et, t->arow[r + 1], k);
    LLVMValueRef v = LLVMGetUndef(vec(L->t_i64, 2));
    v = LLVMBuildInsertElement(L->b, v, lb_load(L, L->t_i64, p, 1), lb_c32(L, 0), "");
    v = LLVMBuildInsertElement(L->b, v, lb_load(L, L->t_i64, p1, 1), lb_c32(L, 1), "");
    return LLVMBuildBitCast(L->b, v, vec(L->t_i8, 16), "");
  }
  default: {
    LLVMValueRef v = lb_splat(L, lb_load(L, L->t_i32, p, 1), s->lanes);
    if (s->kind == LB_QK_VPDPBUSD) return v;
    return LLVMBuildBitCast(L->b, v, bvec_t(L, s), "");
  }
  }
}

static LLVMValueRef dot(lb_lw *L, const lb_qk_shape *s, LLVMValueRef acc, LLVMValueRef a,
                        LLVMValueRef b) {
  LLVMTypeRef v4 = vec(L->t_i32, 4), v16b = vec(L->t_i8, 16);
  switch (s->kind) {
  case LB_QK_PMADDWD: {
    LLVMValueRef x[2] = {a, b};
    const char *n = s->lanes == 16 ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd";
    return LLVMBuildAdd(L->b, acc, lb_intr(L, n, NULL, x, 2), "");
  }
  case LB_QK_PMADDUBSW: { /* |a| * sign(w, a): u8 x s7 pairs never saturate the i16 sums */
    LLVMTypeRef bt = LLVMTypeOf(b), i1 = LLVMInt1TypeInContext(L->ctx);
    LLVMValueRef ab[2] = {a, LLVMConstInt(i1, 0, 0)}, sb[2] = {b, a};
    LLVMValueRef x[2] = {lb_intr(L, "llvm.abs", bt, ab, 2),
                         lb_intr(L, "llvm.x86.avx2.psign.b", NULL, sb, 2)};
    LLVMValueRef p16 = lb_intr(L, "llvm.x86.avx2.pmadd.ub.sw", NULL, x, 2);
    LLVMValueRef w[2] = {p16, lb_ci(L, LLVMTypeOf(p16), 1)};
    return LLVMBuildAdd(L->b, acc, lb_intr(L, "llvm.x86.avx2.pmadd.wd", NULL, w, 2), "");
  }
  case LB_QK_VPDPBUSD: {
    LLVMValueRef x[3] = {acc, a, LLVMBuildBitCast(L->b, b, LLVMTypeOf(acc), "")};
    const char *n =
        s->lanes == 16 ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256";
    return lb_intr(L, n, NULL, x, 3);
  }
  case LB_QK_SMLAL: {
    LLVMValueRef x[2] = {a, b};
    return LLVMBuildAdd(L->b, acc, lb_intr(L, "llvm.aarch64.neon.smull", v4, x, 2), "");
  }
  case LB_QK_SDOT: {
    LLVMValueRef x[3] = {acc, a, b};
    LLVMTypeRef tys[2] = {v4, v16b};
    return call2(L, "llvm.aarch64.neon.sdot", tys, 2, x, 3);
  }
  default: {
    LLVMValueRef x[3] = {acc, a, b};
    LLVMTypeRef tys[2] = {v4, v16b};
    return call2(L, "llvm.aarch64.neon.smmla", tys, 2, x, 3);
  }
  }
}

/* Element type of the packed B in memory. */
static LLVMTypeRef b_elem(lb_lw *L, const lb_qk_shape *s) {
  return lb_qk_b_bytes(s) == 2 ? i16t(L) : L->t_i8;
}

/* B vector v of the k step at bp (element pointer); b8 storage is widened here (vpmovsxbw). */
static LLVMValueRef b_operand(lb_lw *L, tile *t, LLVMValueRef bp, int v) {
  const lb_qk_shape *s = t->s;
  LLVMTypeRef bt = bvec_t(L, s), et = b_elem(L, s);
  int per = (int)LLVMGetVectorSize(bt);
  LLVMValueRef p = lb_gep(L, et, bp, lb_c64(L, (int64_t)v * per));
  if (s->wide && s->b8) return LLVMBuildSExt(L->b, lb_load(L, vec(L->t_i8, per), p, 1), bt, "");
  return lb_load(L, bt, p, 1);
}

/* The folded bias of accumulator vector v (smmla: [b0 b1 b0 b1] of column pair v). */
static LLVMValueRef acc_init(lb_lw *L, tile *t, LLVMValueRef bias, int v) {
  if (t->s->kind != LB_QK_SMMLA)
    return lb_load(L, t->acc_t, lb_gep(L, L->t_i32, bias, lb_c64(L, (int64_t)v * t->s->lanes)), 4);
  LLVMValueRef b2 = lb_load(L, L->t_i64, lb_gep(L, L->t_i32, bias, lb_c64(L, 2 * (int64_t)v)), 4);
  return LLVMBuildBitCast(L->b, lb_splat(L, b2, 2), t->acc_t, "");
}

/* Prefetches (into L2) the B bytes of this k step in the next panel: a panel serves every row
 * tile of the block before the next one starts, and the next panel's first pass (which at
 * batch 1 usually comes from L3 or DRAM) then finds it in L2. Past the last panel the address
 * is out of bounds: a prefetch never faults, and the GEP is not inbounds. */
static void prefetch_next(lb_lw *L, tile *t, LLVMValueRef bp) {
  const lb_qk_shape *s = t->s;
  int64_t step = (int64_t)s->nr * s->kr * lb_qk_b_bytes(s), pstride = t->j->Kp * s->nr;
  LLVMTypeRef pt = LLVMTypeOf(bp), et = b_elem(L, s);
  unsigned id = LLVMLookupIntrinsicID("llvm.prefetch", 13);
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(L->mod, id, &pt, 1);
  for (int64_t off = 0; off < step; off += 64) {
    LLVMValueRef idx = lb_c64(L, pstride + off / lb_qk_b_bytes(s));
    LLVMValueRef args[4] = {LLVMBuildGEP2(L->b, et, bp, &idx, 1, ""), lb_c32(L, 0), lb_c32(L, 2),
                            lb_c32(L, 1)};
    LLVMBuildCall2(L->b, LLVMIntrinsicGetType(L->ctx, id, &pt, 1), f, args, 4, "");
  }
}

static void k_loop(lb_lw *L, tile *t, int mr, LLVMValueRef bpanel, LLVMValueRef bias) {
  const lb_qk_shape *s = t->s;
  int nacc = s->kind == LB_QK_SMMLA ? (mr / 2) * t->nv : mr * t->nv;
  LLVMValueRef slot[64], init[16];
  for (int v = 0; v < t->nv; v++) init[v] = acc_init(L, t, bias, v);
  for (int i = 0; i < nacc; i++) slot[i] = lb_alloca(L, t->acc_t, init[i % t->nv]);
  lb_loop lp;
  lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, t->j->Kp), s->kr);
  LLVMValueRef bk = LLVMBuildMul(L->b, lp.iv, lb_c64(L, s->nr), "");
  LLVMValueRef bp = lb_gep(L, b_elem(L, s), bpanel, bk);
  LLVMValueRef b[16];
  if (s->pf_next && t->j->Np > s->nr) prefetch_next(L, t, bp);
  for (int v = 0; v < t->nv; v++) b[v] = b_operand(L, t, bp, v);
  int rstep = s->kind == LB_QK_SMMLA ? 2 : 1;
  for (int r = 0; r < mr; r += rstep) {
    LLVMValueRef a = a_operand(L, t, r, lp.iv);
    for (int v = 0; v < t->nv; v++) {
      int i = (r / rstep) * t->nv + v;
      LLVMValueRef acc = lb_load(L, t->acc_t, slot[i], 16);
      lb_store(L, dot(L, s, acc, a, b[v]), slot[i], 16);
    }
  }
  lb_loop_end(L, &lp);
  for (int i = 0; i < nacc; i++) t->acc[i] = lb_load(L, t->acc_t, slot[i], 16);
}

/* Accumulator vector of row r, output vector v (lanes columns) after the k loop. */
static LLVMValueRef row_acc(lb_lw *L, tile *t, int r, int v) {
  if (t->s->kind != LB_QK_SMMLA) return t->acc[r * t->nv + v];
  /* smmla blocks are [r0c0 r0c1 r1c0 r1c1] per column pair: 4 columns = pairs 2v, 2v+1 */
  LLVMValueRef x = t->acc[(r / 2) * t->nv + 2 * v], y = t->acc[(r / 2) * t->nv + 2 * v + 1];
  int lo = (r % 2) * 2;
  LLVMValueRef m[4] = {lb_c32(L, lo), lb_c32(L, lo + 1), lb_c32(L, lo + 4), lb_c32(L, lo + 5)};
  return LLVMBuildShuffleVector(L->b, x, y, LLVMConstVector(m, 4), "");
}

/* ---- epilogue ---------------------------------------------------------------------------- */

static LLVMValueRef ext8(lb_lw *L, LLVMValueRef v, lb_dtype dt, LLVMTypeRef to) {
  return dt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, v, to, "") : LLVMBuildSExt(L->b, v, to, "");
}

/* Residual values (minus their zero point) of cnt columns starting at column n. */
static LLVMValueRef res_vec(lb_lw *L, const lb_qgemm_job *j, LLVMValueRef roff, LLVMValueRef n,
                            int lanes, int cnt) {
  LLVMTypeRef it = vec(L->t_i32, lanes);
  LLVMValueRef base = lb_gep(L, L->t_i8, j->res, roff);
  LLVMValueRef v;
  if (j->sr_n == 1 && cnt == lanes) {
    v = ext8(L, lb_load(L, vec(L->t_i8, lanes), lb_gep(L, L->t_i8, base, n), 1), j->res_dt, it);
  } else {
    v = LLVMConstNull(it);
    for (int l = 0; l < cnt; l++) {
      LLVMValueRef off = LLVMBuildMul(L->b, LLVMBuildAdd(L->b, n, lb_c64(L, l), ""),
                                      lb_c64(L, j->sr_n), "");
      LLVMValueRef e = ext8(L, lb_load(L, L->t_i8, lb_gep(L, L->t_i8, base, off), 1), j->res_dt,
                            L->t_i32);
      v = LLVMBuildInsertElement(L->b, v, e, lb_c32(L, l), "");
    }
  }
  return LLVMBuildSub(L->b, v, lb_ci(L, it, j->zr), "");
}

static void store_vec(lb_lw *L, const lb_qgemm_job *j, LLVMValueRef q, LLVMValueRef ooff,
                      LLVMValueRef n, int lanes, int cnt) {
  int wide = j->out_dt == LB_DTYPE_I32; /* the raw accumulator (read by fp32 layers) */
  LLVMTypeRef et = wide ? L->t_i32 : L->t_i8;
  LLVMValueRef base = lb_gep(L, et, j->out, ooff);
  LLVMValueRef b8 = wide ? q : LLVMBuildTrunc(L->b, q, vec(L->t_i8, lanes), "");
  if (j->so_n == 1 && cnt == lanes) {
    lb_store(L, b8, lb_gep(L, et, base, n), 1);
    return;
  }
  for (int l = 0; l < cnt; l++) {
    LLVMValueRef off =
        LLVMBuildMul(L->b, LLVMBuildAdd(L->b, n, lb_c64(L, l), ""), lb_c64(L, j->so_n), "");
    lb_store(L, LLVMBuildExtractElement(L->b, b8, lb_c32(L, l), ""),
             lb_gep(L, et, base, off), 1);
  }
}

LLVMValueRef lb_qcvt_rne(lb_lw *L, LLVMValueRef x) {
  int lanes = (int)LLVMGetVectorSize(LLVMTypeOf(x));
  LLVMTypeRef it = vec(L->t_i32, lanes);
  if (lanes == 16) {
    LLVMValueRef a[4] = {x, LLVMGetUndef(it), LLVMConstInt(i16t(L), 0xffff, 0),
                         lb_c32(L, 4)}; /* 4: the MXCSR rounding (nearest-even) */
    return lb_intr(L, "llvm.x86.avx512.mask.cvtps2dq.512", NULL, a, 4);
  }
  return lb_intr(L, lanes == 8 ? "llvm.x86.avx.cvt.ps2dq.256" : "llvm.x86.sse2.cvtps2dq", NULL,
                 &x, 1);
}

LLVMValueRef lb_qclamp_bytes(lb_lw *L, LLVMValueRef v, lb_dtype dt, int32_t lo, int32_t hi) {
  int u = dt == LB_DTYPE_U8;
  LLVMTypeRef t = LLVMTypeOf(v);
  LLVMValueRef a[2] = {v, NULL};
  if (lo > (u ? 0 : -128)) {
    a[1] = lb_ci(L, t, lo);
    a[0] = lb_intr(L, u ? "llvm.umax" : "llvm.smax", t, a, 2);
  }
  if (hi < (u ? 255 : 127)) {
    a[1] = lb_ci(L, t, hi);
    a[0] = lb_intr(L, u ? "llvm.umin" : "llvm.smin", t, a, 2);
  }
  return a[0];
}

int lb_qpacks_ok(const lb_qgemm_job *j, int nv, int lanes, int ncols) {
  return j->nosat && !is_arm(j->s) && nv % 2 == 0 && ncols == nv * lanes && j->so_n == 1 &&
         (lanes == 8 || lanes == 16) && (j->out_dt == LB_DTYPE_I8 || j->out_dt == LB_DTYPE_U8);
}

/* acc * m (+ r * mr) rounded by vcvtps2dq without the float clamp, vpackssdw, + zy saturating
 * in i16, vpacksswb / vpackuswb, then one vpermd puts the 2 * lanes bytes (two copies per
 * 128-bit lane) in column order; the byte clamp applies the fused activation. Every
 * saturation lies outside [lo, hi]: the result is lb_qrequant's. */
void lb_qpacks_row(lb_lw *L, const lb_qgemm_job *j, int lanes, LLVMValueRef *acc,
                   LLVMValueRef *mult, LLVMValueRef *res, LLVMValueRef dst) {
  int w = lanes == 16;
  LLVMTypeRef ft = vec(L->t_f32, lanes);
  LLVMValueRef q[2], m[8];
  for (int v = 0; v < 2; v++) {
    LLVMValueRef x = LLVMBuildFMul(L->b, LLVMBuildSIToFP(L->b, acc[v], ft, ""), mult[v], "");
    if (res) {
      LLVMValueRef rv = LLVMBuildSIToFP(L->b, res[v], ft, "");
      x = LLVMBuildFAdd(L->b, x, LLVMBuildFMul(L->b, rv, lb_cf(L, ft, j->mr), ""), "");
    }
    q[v] = lb_qcvt_rne(L, x);
  }
  LLVMValueRef h = lb_intr(L, w ? "llvm.x86.avx512.packssdw.512" : "llvm.x86.avx2.packssdw",
                           NULL, q, 2);
  if (j->zy) {
    LLVMValueRef a[2] = {h, lb_ci(L, LLVMTypeOf(h), j->zy)};
    h = lb_intr(L, "llvm.sadd.sat", LLVMTypeOf(h), a, 2);
  }
  LLVMValueRef hh[2] = {h, h};
  const char *pk = j->out_dt == LB_DTYPE_U8
                       ? (w ? "llvm.x86.avx512.packuswb.512" : "llvm.x86.avx2.packuswb")
                       : (w ? "llvm.x86.avx512.packsswb.512" : "llvm.x86.avx2.packsswb");
  LLVMValueRef d = LLVMBuildBitCast(L->b, lb_intr(L, pk, NULL, hh, 2), vec(L->t_i32, lanes), "");
  for (int i = 0; i < lanes / 2; i++) /* dword l of a 128-bit lane: vector l % 2, twice */
    m[i] = lb_c32(L, 4 * (i % (lanes / 4)) + i / (lanes / 4));
  d = LLVMBuildShuffleVector(L->b, d, LLVMGetUndef(LLVMTypeOf(d)),
                             LLVMConstVector(m, (unsigned)lanes / 2), "");
  d = LLVMBuildBitCast(L->b, d, vec(L->t_i8, 2 * lanes), "");
  d = lb_qclamp_bytes(L, d, j->out_dt, j->lo, j->hi);
  lb_store(L, d, dst, 1);
}

/* The packs epilogue of one row (lb_qpacks_row on the tile's two accumulator vectors). */
static void epilogue_packs(lb_lw *L, tile *t, int r, LLVMValueRef ooff, LLVMValueRef roff,
                           LLVMValueRef n0) {
  const lb_qgemm_job *j = t->j;
  int lanes = t->s->lanes;
  LLVMValueRef acc[2], rv[2];
  for (int v = 0; v < 2; v++) {
    acc[v] = row_acc(L, t, r, v);
    if (j->res)
      rv[v] = res_vec(L, j, roff, LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * lanes), ""),
                      lanes, lanes);
  }
  lb_qpacks_row(L, j, lanes, acc, t->mult, j->res ? rv : NULL,
                lb_gep(L, L->t_i8, j->out, LLVMBuildAdd(L->b, ooff, n0, "")));
}

/* Row r of the tile (global row index grow) for columns [n0, n0 + ncols). */
static void epilogue_row(lb_lw *L, tile *t, int r, LLVMValueRef grow, LLVMValueRef n0,
                         int ncols) {
  const lb_qgemm_job *j = t->j;
  int lanes = t->s->lanes;
  LLVMValueRef ooff = j->row_off(L, grow, j->ud, 0);
  LLVMValueRef roff = j->res && j->out_dt != LB_DTYPE_I32 ? j->row_off(L, grow, j->ud, 1) : NULL;
  if (t->nv == 2 && lb_qpacks_ok(j, 2, lanes, ncols)) {
    epilogue_packs(L, t, r, ooff, roff, n0);
    return;
  }
  for (int v = 0; v * lanes < ncols; v++) {
    int cnt = ncols - v * lanes < lanes ? ncols - v * lanes : lanes;
    LLVMValueRef n = LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * lanes), "");
    LLVMValueRef acc = row_acc(L, t, r, v); /* the bias is its initial value */
    if (j->out_dt == LB_DTYPE_I32) {
      store_vec(L, j, acc, ooff, n, lanes, cnt);
      continue;
    }
    LLVMValueRef m = t->mult[v];
    LLVMValueRef rv = j->res ? res_vec(L, j, roff, n, lanes, cnt) : NULL;
    LLVMValueRef mr = rv ? lb_cf(L, vec(L->t_f32, lanes), j->mr) : NULL;
    store_vec(L, j, lb_qrequant(L, t->s, acc, m, rv, mr, j->zy, j->lo, j->hi), ooff, n, lanes,
              cnt);
  }
}

/* One mr x nr tile (mr <= s->mr): rows [t0, t0 + mr) of the block (valid: rows - t0), panel at
 * column n0. */
static void emit_tile(lb_lw *L, tile *t, int mr, LLVMValueRef a_pk, LLVMValueRef row0,
                      LLVMValueRef t0, LLVMValueRef rows, LLVMValueRef n0, int ncols) {
  const lb_qgemm_job *j = t->j;
  const lb_qk_shape *s = t->s;
  LLVMTypeRef et = s->wide ? i16t(L) : L->t_i8;
  LLVMValueRef last = LLVMBuildSub(L->b, rows, lb_c64(L, 1), "");
  for (int r = 0; r < mr; r++) {
    LLVMValueRef ri = LLVMBuildAdd(L->b, t0, lb_c64(L, r), "");
    ri = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, ri, rows, ""), ri, last, "");
    t->arow[r] = lb_gep(L, et, a_pk, LLVMBuildMul(L->b, ri, lb_c64(L, j->Kp), ""));
  }
  LLVMValueRef bpanel =
      lb_gep(L, b_elem(L, s), j->b, LLVMBuildMul(L->b, n0, lb_c64(L, j->Kp), ""));
  k_loop(L, t, mr, bpanel, lb_gep(L, L->t_i32, j->bias, n0));
  for (int v = 0; v * s->lanes < ncols; v++) /* multipliers once per tile, not per row */
    t->mult[v] = lb_load(L, vec(L->t_f32, s->lanes),
                         lb_gep(L, L->t_f32, j->mult, LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * s->lanes), "")), 4);
  for (int r = 0; r < mr; r++) {
    LLVMValueRef ri = LLVMBuildAdd(L->b, t0, lb_c64(L, r), "");
    LLVMBasicBlockRef join = lb_if_begin(L, LLVMBuildICmp(L->b, LLVMIntSLT, ri, rows, ""));
    epilogue_row(L, t, r, LLVMBuildAdd(L->b, row0, ri, ""), n0, ncols);
    lb_if_end(L, join);
  }
}

/* The row tiles of one panel. With a constant row count the last tile has only the rows left
 * (ResNet-18 layer4: 49 rows = 12 tiles of 4 and one of 1, not 13 of 4); otherwise every tile
 * has mr rows, the rows past the end clamped to the last one and not stored. */
static void panel_rows(lb_lw *L, tile *t, LLVMValueRef a_pk, LLVMValueRef row0,
                       LLVMValueRef rows, LLVMValueRef n0, int ncols) {
  int mr = t->s->mr;
  if (LLVMIsAConstantInt(rows)) {
    int64_t R = LLVMConstIntGetSExtValue(rows), full = R / mr * mr;
    int rest = (int)(R - full);
    if (t->s->kind == LB_QK_SMMLA) rest += rest & 1; /* smmla takes rows in pairs */
    if (full > 0) {
      lb_loop lt;
      lb_loop_begin(L, &lt, lb_c64(L, 0), lb_c64(L, full), mr);
      emit_tile(L, t, mr, a_pk, row0, lt.iv, rows, n0, ncols);
      lb_loop_end(L, &lt);
    }
    if (rest) emit_tile(L, t, rest, a_pk, row0, lb_c64(L, full), rows, n0, ncols);
    return;
  }
  lb_loop lt;
  lb_loop_begin(L, &lt, lb_c64(L, 0), rows, 1);
  emit_tile(L, t, mr, a_pk, row0, lt.iv, rows, n0, ncols);
  /* the header tests t0 < rows (step 1), but tiles advance by mr: the last one is partial */
  LLVMValueRef next = LLVMBuildNSWAdd(L->b, lt.iv, lb_c64(L, mr), "");
  LLVMBasicBlockRef from = LLVMGetInsertBlock(L->b);
  LLVMBuildBr(L->b, lt.header);
  LLVMAddIncoming(lt.iv, &next, &from, 1);
  LLVMPositionBuilderAtEnd(L->b, lt.exit);
}

void lb_qgemm_emit(lb_lw *L, const lb_qgemm_job *j, LLVMValueRef a_pk, LLVMValueRef row0,
                   LLVMValueRef rows) {
  const lb_qk_shape *s = j->s;
  tile t = {.j = j, .s = s};
  t.nv = s->kind == LB_QK_SMMLA ? s->nr / 2 : s->nr / s->lanes;
  t.acc_t = vec(L->t_i32, s->kind == LB_QK_SMMLA ? 4 : s->lanes);
  int64_t full = j->N / s->nr;
  if (full > 0) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, full * s->nr), s->nr);
    panel_rows(L, &t, a_pk, row0, rows, lp.iv, s->nr);
    lb_loop_end(L, &lp);
  }
  if (j->N % s->nr)
    panel_rows(L, &t, a_pk, row0, rows, lb_c64(L, full * s->nr), (int)(j->N % s->nr));
}
