/* LLVM emitters of the sub-byte kernels. int4/int2 weights: native register kernels on x86 and
 * AArch64 (compressed B vectors loaded once per k step, fields cut out by a shift and a mask
 * and sign extended by a vpshufb table (x86) or by shl + sshr (NEON), amortized over the tile's
 * rows; then vpmaddubsw on u8 activations with int16 sums widened by vpmaddwd every few steps
 * (AVX2), vpdpbusd (VNNI), sdot (dot product) or, on plain NEON, smull/smlal2 on s8 x s8 into
 * int16 sums widened by saddlp + addp every few steps); for the wide int8 kernels (pmaddwd)
 * panels decompressed into L1 in front of the int8 micro-kernel of qkernels_gemm.c.
 * Binary dense layers: sign bits by one vector compare into a mask, XOR with 8 weight columns,
 * llvm.ctpop (vpopcntq, vpshufb lookup on AVX2, cnt + uaddlp on NEON). Invariant: every kernel
 * computes the interpreter's int32 accumulators exactly and ends in lb_qrequant (or, x86 with
 * j->nosat, its packs form lb_qpacks_row). */
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "subkernels.h"

static LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
static LLVMValueRef mul64(lb_lw *L, LLVMValueRef a, int64_t b) {
  return LLVMBuildMul(L->b, a, lb_c64(L, b), "");
}

/* ---- int4 / int2 weights --------------------------------------------------------------- */

size_t lb_subgemm_scratch(const lb_qk_shape *s, int64_t Kp) {
  if (lb_sub_kernel(s) != LB_SUBK_PANEL) return 64; /* native kernels need no panel buffer */
  int64_t per_chunk = LB_SUB_CHUNK * 4, n = (Kp * s->nr + per_chunk - 1) / per_chunk * per_chunk;
  return (size_t)(n * (s->wide ? 2 : 1)) + 64;
}

/* Decompresses one panel (panel_bytes at src) into dst: chunk c, field f goes to elements
 * [c * C * G + f * C, +C) for chunk bytes C. Sign extension: (x << (8 - bits * (f + 1)))
 * >>a (8 - bits). */
static void unpack_panel(lb_lw *L, const lb_subpacked *sp, LLVMValueRef src, LLVMValueRef dst) {
  int G = 8 / sp->bits, C = sp->chunk;
  LLVMTypeRef v8 = vec(L->t_i8, C), i16 = LLVMInt16TypeInContext(L->ctx);
  LLVMTypeRef et = sp->wide ? i16 : L->t_i8;
  lb_loop lc;
  lb_loop_begin(L, &lc, lb_c64(L, 0), lb_c64(L, sp->panel_bytes / C), 1);
  LLVMValueRef x = lb_load(L, v8, lb_gep(L, L->t_i8, src, mul64(L, lc.iv, C)), 16);
  LLVMValueRef base = mul64(L, lc.iv, (int64_t)C * G);
  for (int f = 0; f < G; f++) {
    LLVMValueRef v = x;
    int up = 8 - sp->bits * (f + 1);
    if (up) v = LLVMBuildShl(L->b, v, lb_ci(L, v8, up), "");
    v = LLVMBuildAShr(L->b, v, lb_ci(L, v8, 8 - sp->bits), "");
    if (sp->wide) v = LLVMBuildSExt(L->b, v, vec(i16, C), "");
    LLVMValueRef at = LLVMBuildAdd(L->b, base, lb_c64(L, (int64_t)f * C), "");
    lb_store(L, v, lb_gep(L, et, dst, at), 16);
  }
  lb_loop_end(L, &lc);
}

typedef struct subrun {
  const lb_qgemm_job *j;
  const lb_subpacked *sp;
  LLVMValueRef bsub, buf, a_pk, row0, rows;
} subrun;

/* Panel p (i64 value): decompress, then the int8 tiles on its cols columns. */
static void run_panel(lb_lw *L, const subrun *r, LLVMValueRef p, int64_t cols) {
  const lb_qgemm_job *j = r->j;
  unpack_panel(L, r->sp, lb_gep(L, L->t_i8, r->bsub, mul64(L, p, r->sp->panel_bytes)), r->buf);
  LLVMValueRef n0 = mul64(L, p, j->s->nr);
  lb_qgemm_job jp = *j;
  jp.N = cols;
  jp.Np = j->s->nr;
  jp.b = r->buf;
  jp.bias = lb_gep(L, L->t_i32, j->bias, n0);
  jp.mult = lb_gep(L, L->t_f32, j->mult, n0);
  LLVMTypeRef ot = j->out_dt == LB_DTYPE_I32 ? L->t_i32 : L->t_i8;
  jp.out = lb_gep(L, ot, j->out, mul64(L, n0, j->so_n));
  if (j->res) jp.res = lb_gep(L, L->t_i8, j->res, mul64(L, n0, j->sr_n));
  lb_qgemm_emit(L, &jp, r->a_pk, r->row0, r->rows);
}

/* ---- native kernels: fields unpacked in registers (x86, AArch64 sdot) -------------------- */

typedef struct ntile {
  const lb_qgemm_job *j;
  const lb_subpacked *sp;
  lb_subk kind;
  int mr, nv, lanes, G, vb; /* rows, B vectors per k step, i32 lanes, fields per byte, B bytes */
  int h; /* sums per row x B vector: 2 int16 halves (smull / smull2) on plain NEON, else 1 */
  int w1; /* vpmaddubsw with 7-bit weights (2 * 255 * wmax > 32767 / 2): every step's int16
           * pairs widened at once by vpmaddwd into the i32 accumulators (no int16 slots) */
  LLVMTypeRef bt, acc_t, p_t; /* <vb x i8>, <lanes x i32>, <2 lanes x i16> */
  LLVMValueRef lut, mask, bsub, a_pk;
  LLVMValueRef arow[8];
  LLVMValueRef slot[16], slot16[16]; /* i32 accumulators; int16 sums (vpmaddubsw) */
} ntile;

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* k steps per compressed load group: a block of k steps starting at a multiple of the unit
 * starts at field 0 of a chunk. */
static int unit_of(const ntile *t) { return t->G / gcd(t->nv, t->G); }

static LLVMValueRef x86_intr(lb_lw *L, const ntile *t, const char *n256, const char *n512,
                             LLVMValueRef *a, int n) {
  return lb_intr(L, t->lanes == 16 ? n512 : n256, NULL, a, n);
}

/* The sign-extension table {0..7, -8..-1} (int4) or {0, 1, -2, -1} (int2) in every 16-byte
 * lane, and the field mask. */
static void ntile_consts(lb_lw *L, ntile *t) {
  if (t->sp->bits == 8) return; /* narrow int8 weights: nothing to unpack */
  LLVMValueRef e[64];
  int bits = t->sp->bits, half = 1 << (bits - 1);
  for (int i = 0; i < t->vb; i++) {
    int v = i % 16;
    v = v < (1 << bits) ? (v < half ? v : v - (1 << bits)) : 0;
    e[i] = LLVMConstInt(L->t_i8, (uint64_t)(int64_t)v, 1);
  }
  t->lut = LLVMConstVector(e, (unsigned)t->vb);
  t->mask = lb_ci(L, t->bt, (1 << bits) - 1);
}

/* Field f of the loaded chunk x as s8 lanes: x86: shift (16-bit lanes: the mask drops what
 * crossed a byte), mask, table lookup; AArch64: byte shifts left then arithmetic right. */
static LLVMValueRef nfield(lb_lw *L, const ntile *t, LLVMValueRef x, int f) {
  int bits = t->sp->bits;
  if (bits == 8) return x; /* narrow int8 weights: the packed bytes themselves */
  if (t->kind == LB_SUBK_SDOT || t->kind == LB_SUBK_SMLAL) {
    int up = 8 - bits * (f + 1);
    if (up) x = LLVMBuildShl(L->b, x, lb_ci(L, t->bt, up), "");
    return LLVMBuildAShr(L->b, x, lb_ci(L, t->bt, 8 - bits), "");
  }
  if (f) {
    LLVMTypeRef wt = vec(LLVMInt16TypeInContext(L->ctx), t->vb / 2);
    LLVMValueRef w = LLVMBuildBitCast(L->b, x, wt, "");
    w = LLVMBuildLShr(L->b, w, lb_ci(L, wt, f * bits), "");
    x = LLVMBuildBitCast(L->b, w, t->bt, "");
  }
  LLVMValueRef a[2] = {t->lut, LLVMBuildAnd(L->b, x, t->mask, "")};
  return x86_intr(L, t, "llvm.x86.avx2.pshuf.b", "llvm.x86.avx512.pshuf.b.512", a, 2);
}

/* acc += a (u8) . b (s8) over groups of 4 (vpdpbusd) or into int16 pair sums (vpmaddubsw). */
static LLVMValueRef nmadd(lb_lw *L, const ntile *t, LLVMValueRef acc, LLVMValueRef a32,
                          LLVMValueRef b) {
  if (t->kind == LB_SUBK_SDOT) {
    LLVMValueRef x[3] = {acc, b, LLVMBuildBitCast(L->b, a32, t->bt, "")}; /* a last: sdot by lane */
    LLVMTypeRef tys[2] = {t->acc_t, t->bt};
    const char *n = "llvm.aarch64.neon.sdot";
    unsigned id = LLVMLookupIntrinsicID(n, strlen(n));
    return LLVMBuildCall2(L->b, LLVMIntrinsicGetType(L->ctx, id, tys, 2),
                          LLVMGetIntrinsicDeclaration(L->mod, id, tys, 2), x, 3, "");
  }
  if (t->kind == LB_SUBK_VNNI) {
    LLVMValueRef x[3] = {acc, a32, LLVMBuildBitCast(L->b, b, t->acc_t, "")};
    return x86_intr(L, t, "llvm.x86.avx512.vpdpbusd.256", "llvm.x86.avx512.vpdpbusd.512", x, 3);
  }
  LLVMValueRef x[2] = {LLVMBuildBitCast(L->b, a32, t->bt, ""), b};
  x[1] = x86_intr(L, t, "llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx512.pmaddubs.w.512", x, 2);
  if (t->w1) { /* |pair| <= 2 * 255 * 63 = 32130: exact; vpmaddwd by ones sums the pairs */
    x[0] = x[1], x[1] = lb_ci(L, t->p_t, 1);
    x[0] = x86_intr(L, t, "llvm.x86.avx2.pmadd.wd", "llvm.x86.avx512.pmaddw.d.512", x, 2);
    return LLVMBuildAdd(L->b, acc, x[0], "");
  }
  /* a saturating add (vpaddsw) equals vpaddw here (i16_steps: the sums never reach the limits)
   * and keeps LLVM from reassociating the chains into trees that spill the accumulators */
  x[0] = acc;
  return lb_intr(L, "llvm.sadd.sat", t->p_t, x, 2);
}

static LLVMValueRef half8(lb_lw *L, LLVMValueRef v, int h) {
  LLVMValueRef m[8];
  for (int i = 0; i < 8; i++) m[i] = lb_c32(L, 8 * h + i);
  return LLVMBuildShuffleVector(L->b, v, LLVMGetUndef(LLVMTypeOf(v)), LLVMConstVector(m, 8), "");
}

/* The t->h sums of one row x B vector: nmadd, or on plain NEON the low and the high 8 bytes
 * of a (4 k values, twice) times those of b (2 columns x 4 k each) by smull into int16 lanes;
 * the add folds into smlal / smlal2. int16 adds wrap, so their order does not matter: only
 * the block's final sums must fit (i16_steps). */
static void nmac(lb_lw *L, const ntile *t, LLVMValueRef *acc, LLVMValueRef a32, LLVMValueRef b) {
  if (t->kind != LB_SUBK_SMLAL) {
    acc[0] = nmadd(L, t, acc[0], a32, b);
    return;
  }
  LLVMValueRef a = LLVMBuildBitCast(L->b, a32, t->bt, "");
  for (int h = 0; h < 2; h++) {
    LLVMValueRef x[2] = {half8(L, a, h), half8(L, b, h)};
    acc[h] = LLVMBuildAdd(L->b, acc[h], lb_intr(L, "llvm.aarch64.neon.smull", t->p_t, x, 2), "");
  }
}

/* Sums kept in int16 between widenings: vpmaddubsw pairs (AVX2), NEON smull halves. */
static int sums16(const ntile *t) {
  return (t->kind == LB_SUBK_MADDUBS && !t->w1) || t->kind == LB_SUBK_SMLAL;
}

/* Activation operand of row r at k step ks: its 4 bytes in every i32 lane. AArch64 loads 4
 * steps of a row at once (a4: one ldr q) and splats lane s instead of an address add and an
 * ld1r per step: plain NEON by dup (which LLVM widens to 128 bits for smlal2), dot product as
 * the lane operand of sdot (vm.4b[s]; int4 loop over 4 rows x 16 columns x 16 k: 128 -> 101 instructions). */
static LLVMValueRef nact(lb_lw *L, const ntile *t, int r, LLVMValueRef ks, LLVMValueRef a4, int s) {
  if (a4) {
    LLVMValueRef m[16];
    for (int i = 0; i < t->lanes; i++) m[i] = lb_c32(L, s);
    return LLVMBuildShuffleVector(L->b, a4, LLVMGetUndef(LLVMTypeOf(a4)),
                                  LLVMConstVector(m, (unsigned)t->lanes), "");
  }
  LLVMValueRef p = lb_gep(L, L->t_i8, t->arow[r], mul64(L, ks, 4));
  return lb_splat(L, lb_load(L, L->t_i32, p, 1), t->lanes);
}

/* n k steps from k step ks0 (a multiple of the unit) on the accumulator values acc. */
static void nsteps(lb_lw *L, const ntile *t, LLVMValueRef bpan, LLVMValueRef ks0, int n,
                   LLVMValueRef *acc) {
  LLVMValueRef g0 = lb_gep(L, L->t_i8, bpan, mul64(L, ks0, (int64_t)t->nv * (t->vb / t->G)));
  LLVMValueRef raw = NULL, b[8], a4[8] = {0};
  for (int s = 0; s < n; s++) {
    for (int v = 0; v < t->nv; v++) {
      int ti = s * t->nv + v;
      if (ti % t->G == 0)
        raw = lb_load(L, t->bt, lb_gep(L, L->t_i8, g0, lb_c64(L, (int64_t)(ti / t->G) * t->vb)), 1);
      b[v] = nfield(L, t, raw, ti % t->G);
    }
    LLVMValueRef ks = LLVMBuildAdd(L->b, ks0, lb_c64(L, s), "");
    int quad = (t->kind == LB_SUBK_SMLAL || t->kind == LB_SUBK_SDOT) && n - s >= 4 - s % 4;
    for (int r = 0; r < t->mr; r++) {
      if (quad && s % 4 == 0)
        a4[r] = lb_load(L, t->acc_t, lb_gep(L, L->t_i8, t->arow[r], mul64(L, ks, 4)), 1);
      LLVMValueRef a = nact(L, t, r, ks, quad ? a4[r] : NULL, s % 4);
      for (int v = 0; v < t->nv; v++) nmac(L, t, &acc[(r * t->nv + v) * t->h], a, b[v]);
    }
  }
}

/* n k steps from ks0 on the slots: a loop of u-step bodies, then the n % u tail. */
static void nrun(lb_lw *L, const ntile *t, LLVMValueRef bpan, LLVMValueRef ks0, int64_t n, int u,
                 LLVMValueRef *slots) {
  int na = t->mr * t->nv * t->h;
  LLVMTypeRef st = sums16(t) ? t->p_t : t->acc_t;
  LLVMValueRef acc[16];
  if (n >= u) {
    lb_loop lk;
    lb_loop_begin(L, &lk, lb_c64(L, 0), lb_c64(L, n / u * u), u);
    for (int i = 0; i < na; i++) acc[i] = lb_load(L, st, slots[i], 32);
    nsteps(L, t, bpan, LLVMBuildAdd(L->b, ks0, lk.iv, ""), u, acc);
    for (int i = 0; i < na; i++) lb_store(L, acc[i], slots[i], 32);
    lb_loop_end(L, &lk);
  }
  if (n % u == 0) return;
  for (int i = 0; i < na; i++) acc[i] = lb_load(L, st, slots[i], 32);
  nsteps(L, t, bpan, LLVMBuildAdd(L->b, ks0, lb_c64(L, n / u * u), ""), (int)(n % u), acc);
  for (int i = 0; i < na; i++) lb_store(L, acc[i], slots[i], 32);
}

/* k steps whose int16 sums cannot overflow, a multiple of the unit. Proof: each vpmaddubsw lane
 * is a0 * w0 + a1 * w1 with a in [0, 255] (u8) and |w| <= wmax (the weights' own bound, known
 * at compile time), so after S steps |sum| <= S * 2 * 255 * wmax <= 32767: no vpmaddubsw
 * saturation (S >= 1) and no int16 wrap. int4 -7..7: 9 steps, -8..7: 8; int2 -1..1: 64.
 * NEON: each smull lane is one product a * w per k step with a in [-128, 127] (s8), so
 * S * 128 * wmax <= 32767, S rounded down to whole 4-step bodies: int4 -8..7: 28 (31), -7..7:
 * 36; int2: 64 (the cap). */
static int i16_steps(const ntile *t) {
  int w = t->sp->wmax > 0 ? t->sp->wmax : 1, unit = unit_of(t);
  int per = t->kind == LB_SUBK_SMLAL ? 128 * w : 2 * 255 * w, s = 32767 / per;
  int m = t->kind == LB_SUBK_SMLAL && s >= 4 * unit ? 4 * unit : unit;
  s = (s > 64 ? 64 : s) / m * m;
  LB_ASSERT(s >= unit && (int64_t)s * per <= 32767);
  return s;
}

/* The largest multiple of the unit up to max(4, unit) that divides n (n itself if smaller). */
static int body_steps(const ntile *t, int64_t n) {
  int unit = unit_of(t), u = unit;
  for (int c = unit; c <= (unit > 4 ? unit : 4); c += unit)
    if (n % c == 0) u = c;
  return u;
}

/* The int16 sums of accumulator i as <lanes x i32> column sums. AVX2: vpmaddwd by ones adds
 * each int16 pair into an i32 lane. NEON: the low half holds columns 0, 1 and the high half
 * columns 2, 3 (4 k values each): saddlp pairs them, addp finishes [c0 c1 c2 c3]. */
static LLVMValueRef nwiden(lb_lw *L, const ntile *t, int i) {
  if (t->kind != LB_SUBK_SMLAL) {
    LLVMValueRef x[2] = {lb_load(L, t->p_t, t->slot16[i], 32), lb_ci(L, t->p_t, 1)};
    return x86_intr(L, t, "llvm.x86.avx2.pmadd.wd", "llvm.x86.avx512.pmaddw.d.512", x, 2);
  }
  const char *n = "llvm.aarch64.neon.saddlp";
  unsigned id = LLVMLookupIntrinsicID(n, strlen(n));
  LLVMTypeRef tys[2] = {t->acc_t, t->p_t};
  LLVMTypeRef ft = LLVMIntrinsicGetType(L->ctx, id, tys, 2);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->mod, id, tys, 2), p[2];
  for (int h = 0; h < 2; h++) {
    LLVMValueRef x = lb_load(L, t->p_t, t->slot16[2 * i + h], 32);
    p[h] = LLVMBuildCall2(L->b, ft, fn, &x, 1, "");
  }
  return lb_intr(L, "llvm.aarch64.neon.addp", t->acc_t, p, 2);
}

/* One int16 block: zeroed sums, len k steps from ks0, widened into the i32 accumulators. */
static void nblock(lb_lw *L, ntile *t, LLVMValueRef bpan, LLVMValueRef ks0, int64_t len) {
  int na = t->mr * t->nv;
  for (int i = 0; i < na * t->h; i++) lb_store(L, LLVMConstNull(t->p_t), t->slot16[i], 32);
  nrun(L, t, bpan, ks0, len, body_steps(t, len), t->slot16);
  for (int i = 0; i < na; i++) {
    LLVMValueRef w = nwiden(L, t, i);
    lb_store(L, LLVMBuildAdd(L->b, lb_load(L, t->acc_t, t->slot[i], 32), w, ""), t->slot[i], 32);
  }
}

/* The k loop of one tile into t->slot (initialized with the folded bias). */
static void nkloop(lb_lw *L, ntile *t, LLVMValueRef bpan) {
  int64_t steps = t->j->Kp / 4;
  if (!sums16(t)) { /* vpdpbusd, sdot, 7-bit vpmaddubsw: straight into i32 */
    nrun(L, t, bpan, lb_c64(L, 0), steps, body_steps(t, 4 * unit_of(t)), t->slot);
    return;
  }
  int64_t S = i16_steps(t), nblk = steps / S;
  if (nblk > 0) {
    lb_loop lb;
    lb_loop_begin(L, &lb, lb_c64(L, 0), lb_c64(L, nblk), 1);
    nblock(L, t, bpan, mul64(L, lb.iv, S), S);
    lb_loop_end(L, &lb);
  }
  if (steps % S) nblock(L, t, bpan, lb_c64(L, nblk * S), steps % S);
}

/* cnt elements (stride st) at base + n * st as one <lanes x i32>: 8-bit values extended by dt. */
static LLVMValueRef ncols_load(lb_lw *L, LLVMValueRef base, int64_t st, LLVMValueRef n, int lanes,
                               int cnt, lb_dtype dt) {
  LLVMTypeRef it = vec(L->t_i32, lanes);
  LLVMValueRef v = LLVMConstNull(it);
  if (st == 1 && cnt == lanes) {
    v = lb_load(L, vec(L->t_i8, lanes), lb_gep(L, L->t_i8, base, n), 1);
    return dt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, v, it, "") : LLVMBuildSExt(L->b, v, it, "");
  }
  for (int l = 0; l < cnt; l++) {
    LLVMValueRef at = mul64(L, LLVMBuildAdd(L->b, n, lb_c64(L, l), ""), st);
    LLVMValueRef e = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, base, at), 1);
    e = dt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, e, L->t_i32, "") : LLVMBuildSExt(L->b, e, L->t_i32, "");
    v = LLVMBuildInsertElement(L->b, v, e, lb_c32(L, l), "");
  }
  return v;
}

/* Stores cnt lanes of q (i32, or truncated to 8 bits) at base + n * st. */
static void ncols_store(lb_lw *L, LLVMValueRef q, LLVMValueRef base, int64_t st, LLVMValueRef n,
                        int lanes, int cnt, int wide) {
  LLVMTypeRef et = wide ? L->t_i32 : L->t_i8;
  if (!wide) q = LLVMBuildTrunc(L->b, q, vec(L->t_i8, lanes), "");
  if (st == 1 && cnt == lanes) {
    lb_store(L, q, lb_gep(L, et, base, n), 1);
    return;
  }
  for (int l = 0; l < cnt; l++) {
    LLVMValueRef at = mul64(L, LLVMBuildAdd(L->b, n, lb_c64(L, l), ""), st);
    lb_store(L, LLVMBuildExtractElement(L->b, q, lb_c32(L, l), ""), lb_gep(L, et, base, at), 1);
  }
}

/* The residual's cnt columns from n (i32, minus zr) at rbase. */
static LLVMValueRef nres(lb_lw *L, const ntile *t, LLVMValueRef rbase, LLVMValueRef n, int cnt) {
  const lb_qgemm_job *j = t->j;
  LLVMValueRef rv = ncols_load(L, rbase, j->sr_n, n, t->lanes, cnt, j->res_dt);
  return LLVMBuildSub(L->b, rv, lb_ci(L, t->acc_t, j->zr), "");
}

/* A full row of 8-bit output by lb_qpacks_row (j->nosat), two vectors at a time. */
static void npacks(lb_lw *L, const ntile *t, int r, LLVMValueRef obase, LLVMValueRef rbase,
                   LLVMValueRef n0, LLVMValueRef *mult) {
  for (int v = 0; v < t->nv; v += 2) {
    LLVMValueRef acc[2], rv[2];
    for (int i = 0; i < 2; i++) {
      LLVMValueRef n = LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)(v + i) * t->lanes), "");
      acc[i] = lb_load(L, t->acc_t, t->slot[r * t->nv + v + i], 32);
      if (rbase) rv[i] = nres(L, t, rbase, n, t->lanes);
    }
    LLVMValueRef n = LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * t->lanes), "");
    lb_qpacks_row(L, t->j, t->lanes, acc, mult + v, rbase ? rv : NULL,
                  lb_gep(L, L->t_i8, obase, n));
  }
}

/* Row r of the tile (global row grow), columns [n0, n0 + ncols): requantize (with the residual)
 * or store the raw accumulators, as lb_qgemm_emit's epilogue. */
static void nepilogue(lb_lw *L, const ntile *t, int r, LLVMValueRef grow, LLVMValueRef n0,
                      int ncols, LLVMValueRef *mult) {
  const lb_qgemm_job *j = t->j;
  int wide = j->out_dt == LB_DTYPE_I32;
  LLVMTypeRef ot = wide ? L->t_i32 : L->t_i8;
  LLVMValueRef obase = lb_gep(L, ot, j->out, j->row_off(L, grow, j->ud, 0));
  LLVMValueRef rbase = j->res && !wide ? lb_gep(L, L->t_i8, j->res, j->row_off(L, grow, j->ud, 1)) : NULL;
  if (lb_qpacks_ok(j, t->nv, t->lanes, ncols)) {
    npacks(L, t, r, obase, rbase, n0, mult);
    return;
  }
  for (int v = 0; v * t->lanes < ncols; v++) {
    int cnt = ncols - v * t->lanes < t->lanes ? ncols - v * t->lanes : t->lanes;
    LLVMValueRef n = LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * t->lanes), "");
    LLVMValueRef q = lb_load(L, t->acc_t, t->slot[r * t->nv + v], 32);
    if (!wide) {
      LLVMValueRef rv = NULL, mr = NULL;
      if (rbase) {
        rv = nres(L, t, rbase, n, cnt);
        mr = lb_cf(L, vec(L->t_f32, t->lanes), j->mr);
      }
      q = lb_qrequant(L, j->s, q, mult[v], rv, mr, j->zy, j->lo, j->hi);
    }
    ncols_store(L, q, obase, j->so_n, n, t->lanes, cnt, wide);
  }
}

/* One mr x nr tile: rows [t0, t0 + mr) of the block (row pointers clamped to the last valid
 * row), panel p (i64) of ncols columns. */
static void ntile_emit(lb_lw *L, ntile *t, LLVMValueRef row0, LLVMValueRef t0, LLVMValueRef rows,
                       LLVMValueRef p, int ncols) {
  const lb_qgemm_job *j = t->j;
  LLVMValueRef last = LLVMBuildSub(L->b, rows, lb_c64(L, 1), "");
  for (int r = 0; r < t->mr; r++) {
    LLVMValueRef ri = LLVMBuildAdd(L->b, t0, lb_c64(L, r), "");
    ri = LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, ri, rows, ""), ri, last, "");
    t->arow[r] = lb_gep(L, L->t_i8, t->a_pk, mul64(L, ri, j->Kp));
  }
  LLVMValueRef n0 = mul64(L, p, j->s->nr), mult[4];
  for (int v = 0; v < t->nv; v++) {
    LLVMValueRef nv = LLVMBuildAdd(L->b, n0, lb_c64(L, (int64_t)v * t->lanes), "");
    LLVMValueRef b = lb_load(L, t->acc_t, lb_gep(L, L->t_i32, j->bias, nv), 4);
    mult[v] = lb_load(L, vec(L->t_f32, t->lanes), lb_gep(L, L->t_f32, j->mult, nv), 4);
    for (int r = 0; r < t->mr; r++) lb_store(L, b, t->slot[r * t->nv + v], 32);
  }
  nkloop(L, t, lb_gep(L, L->t_i8, t->bsub, mul64(L, p, t->sp->panel_bytes)));
  for (int r = 0; r < t->mr; r++) {
    LLVMValueRef ri = LLVMBuildAdd(L->b, t0, lb_c64(L, r), "");
    LLVMBasicBlockRef join = lb_if_begin(L, LLVMBuildICmp(L->b, LLVMIntSLT, ri, rows, ""));
    nepilogue(L, t, r, LLVMBuildAdd(L->b, row0, ri, ""), n0, ncols, mult);
    lb_if_end(L, join);
  }
}

/* Every row tile of panel p: t0 = 0, mr, 2 mr, ... < rows. With a constant row count the last
 * tile has only the rows left (MobileNetV2's 7x7 layers: 49 rows = 12 tiles of 4 and one of
 * 1), as qkernels_gemm.c's panel_rows. */
static void npanel(lb_lw *L, ntile *t, LLVMValueRef row0, LLVMValueRef rows, LLVMValueRef p,
                   int ncols) {
  if (LLVMIsAConstantInt(rows) && LLVMConstIntGetSExtValue(rows) % t->mr) {
    int64_t R = LLVMConstIntGetSExtValue(rows), full = R / t->mr * t->mr;
    int mr = t->mr;
    if (full > 0) {
      lb_loop lf;
      lb_loop_begin(L, &lf, lb_c64(L, 0), lb_c64(L, full), mr);
      ntile_emit(L, t, row0, lf.iv, rows, p, ncols);
      lb_loop_end(L, &lf);
    }
    t->mr = (int)(R - full);
    ntile_emit(L, t, row0, lb_c64(L, full), rows, p, ncols);
    t->mr = mr;
    return;
  }
  lb_loop lt;
  lb_loop_begin(L, &lt, lb_c64(L, 0), rows, 1);
  ntile_emit(L, t, row0, lt.iv, rows, p, ncols);
  LLVMValueRef next = LLVMBuildNSWAdd(L->b, lt.iv, lb_c64(L, t->mr), "");
  LLVMBasicBlockRef from = LLVMGetInsertBlock(L->b);
  LLVMBuildBr(L->b, lt.header);
  LLVMAddIncoming(lt.iv, &next, &from, 1);
  LLVMPositionBuilderAtEnd(L->b, lt.exit);
}

static void native_emit(lb_lw *L, const lb_qgemm_job *j, const lb_subpacked *sp, LLVMValueRef bsub,
                        LLVMValueRef a_pk, LLVMValueRef row0, LLVMValueRef rows) {
  const lb_qk_shape *s = j->s;
  ntile t = {.j = j, .sp = sp, .kind = lb_sub_kernel(s), .mr = s->mr, .lanes = s->lanes,
             .nv = s->nr / s->lanes, .G = 8 / sp->bits, .vb = s->lanes * 4, .bsub = bsub,
             .a_pk = a_pk, .h = lb_sub_kernel(s) == LB_SUBK_SMLAL ? 2 : 1};
  LB_ASSERT(t.mr <= 8 && t.nv <= 4 && t.mr * t.nv * t.h <= 16 && sp->chunk == t.vb && s->kr == 4);
  t.bt = vec(L->t_i8, t.vb), t.acc_t = vec(L->t_i32, t.lanes);
  t.p_t = vec(LLVMInt16TypeInContext(L->ctx), 2 * t.lanes);
  t.w1 = t.kind == LB_SUBK_MADDUBS && 2 * 2 * 255 * sp->wmax > 32767;
  if (t.kind != LB_SUBK_SDOT && t.kind != LB_SUBK_SMLAL) ntile_consts(L, &t);
  for (int i = 0; i < t.mr * t.nv; i++) t.slot[i] = lb_alloca(L, t.acc_t, NULL);
  for (int i = 0; i < t.mr * t.nv * t.h; i++) t.slot16[i] = lb_alloca(L, t.p_t, NULL);
  int64_t full = j->N / s->nr;
  if (full > 0) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, full), 1);
    npanel(L, &t, row0, rows, lp.iv, (int)s->nr);
    lb_loop_end(L, &lp);
  }
  if (j->N % s->nr) npanel(L, &t, row0, rows, lb_c64(L, full), (int)(j->N % s->nr));
}

void lb_subgemm_emit(lb_lw *L, const lb_qgemm_job *j, const lb_subpacked *sp, LLVMValueRef bsub,
                     LLVMValueRef panel_buf, LLVMValueRef a_pk, LLVMValueRef row0,
                     LLVMValueRef rows) {
  if (lb_sub_kernel(j->s) != LB_SUBK_PANEL) {
    native_emit(L, j, sp, bsub, a_pk, row0, rows);
    return;
  }
  subrun r = {j, sp, bsub, panel_buf, a_pk, row0, rows};
  int64_t nr = j->s->nr, full = j->N / nr;
  if (full > 0) {
    lb_loop lp;
    lb_loop_begin(L, &lp, lb_c64(L, 0), lb_c64(L, full), 1);
    run_panel(L, &r, lp.iv, nr);
    lb_loop_end(L, &lp);
  }
  if (j->N % nr) run_panel(L, &r, lb_c64(L, full), j->N % nr);
}

/* ---- binary dense ------------------------------------------------------------------------ */

#define BN 8 /* weight columns per vector: <8 x i64> */

static int64_t words_of(const lb_bdense *d) { return (d->K + 63) / 64; }

size_t lb_bgemm_scratch(const lb_bdense *d) { return (size_t)(d->M * words_of(d) * 8) + 64; }

/* x >= thr on 8-bit values widened to i16 (thr clamped: it may lie outside the 8-bit range). */
static LLVMValueRef ge_thr(lb_lw *L, const lb_bdense *d, LLVMValueRef x, int lanes) {
  LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), t = lanes > 1 ? vec(i16, lanes) : i16;
  LLVMValueRef w = d->xt == LB_DTYPE_U8 ? LLVMBuildZExt(L->b, x, t, "") : LLVMBuildSExt(L->b, x, t, "");
  int32_t thr = d->thr < -512 ? -512 : d->thr > 512 ? 512 : d->thr;
  return LLVMBuildICmp(L->b, LLVMIntSGE, w, lb_ci(L, t, thr), "");
}

/* Row m of x into words of sign bits: full words by a <64 x i1> mask, the tail bit by bit. */
static void binarize_row(lb_lw *L, const lb_bdense *d, LLVMValueRef x, LLVMValueRef xb,
                         LLVMValueRef m) {
  int64_t words = words_of(d), full = d->K / 64;
  LLVMValueRef xrow = lb_gep(L, L->t_i8, x, mul64(L, m, d->K));
  LLVMValueRef brow = lb_gep(L, L->t_i64, xb, mul64(L, m, words));
  if (full > 0) {
    lb_loop lw;
    lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, full), 1);
    LLVMValueRef v = lb_load(L, vec(L->t_i8, 64), lb_gep(L, L->t_i8, xrow, mul64(L, lw.iv, 64)), 1);
    LLVMValueRef bits = LLVMBuildBitCast(L->b, ge_thr(L, d, v, 64), L->t_i64, "");
    lb_store(L, bits, lb_gep(L, L->t_i64, brow, lw.iv), 8);
    lb_loop_end(L, &lw);
  }
  if (d->K % 64 == 0) return;
  LLVMValueRef acc = lb_c64(L, 0);
  for (int64_t k = full * 64; k < d->K; k++) { /* fewer than 64 compile-time steps */
    LLVMValueRef e = lb_load(L, L->t_i8, lb_gep(L, L->t_i8, xrow, lb_c64(L, k)), 1);
    LLVMValueRef bit = LLVMBuildZExt(L->b, ge_thr(L, d, e, 1), L->t_i64, "");
    acc = LLVMBuildOr(L->b, acc, LLVMBuildShl(L->b, bit, lb_c64(L, k % 64), ""), "");
  }
  lb_store(L, acc, lb_gep(L, L->t_i64, brow, lb_c64(L, full)), 8);
}

/* Weights as [Np / 8][words][8] u64 (column block, word, column), bias and multipliers padded
 * to Np: the globals of the kernel. */
static int bdense_consts(lb_lw *L, const lb_bdense *d, LLVMValueRef *wg, LLVMValueRef *bg,
                         LLVMValueRef *mg) {
  int64_t words = words_of(d), Np = (d->N + BN - 1) / BN * BN;
  uint64_t *rows = lb_calloc((size_t)(d->N * words) + 1, 8);
  uint64_t *wb = lb_calloc((size_t)(Np * words) + 1, 8);
  int32_t *bb = lb_calloc((size_t)Np + 1, 4);
  float *mm = lb_calloc((size_t)Np + 1, 4);
  int rc = rows && wb && bb && mm ? 0 : LB_ERR_NOMEM;
  if (!rc) {
    lb_bpack_w(d->w, d->N, d->K, words, rows);
    for (int64_t n = 0; n < d->N; n++) {
      for (int64_t w = 0; w < words; w++) wb[((n / BN) * words + w) * BN + n % BN] = rows[n * words + w];
      bb[n] = (d->bias ? d->bias[n] : 0) + (int32_t)d->K; /* acc = bias + K - 2 * mism */
      mm[n] = d->mul[n];
    }
    *wg = lb_const_blob(L, wb, (size_t)(Np * words) * 8, "bw");
    *bg = lb_const_blob(L, bb, (size_t)Np * 4, "bbias");
    *mg = lb_const_blob(L, mm, (size_t)Np * 4, "bmul");
  }
  lb_free(rows), lb_free(wb), lb_free(bb), lb_free(mm);
  return rc;
}

typedef struct bk {
  const lb_bdense *d;
  LLVMValueRef w, bias, mul, xb, y;
} bk;

/* Stores cnt lanes of the <8 x i32> result q of row m, columns [n0, n0 + cnt). */
static void bstore(lb_lw *L, const bk *k, LLVMValueRef q, LLVMValueRef m, LLVMValueRef n0, int cnt) {
  int wide = k->d->yt == LB_DTYPE_I32;
  LLVMTypeRef et = wide ? L->t_i32 : L->t_i8;
  LLVMValueRef v = wide ? q : LLVMBuildTrunc(L->b, q, vec(L->t_i8, BN), "");
  LLVMValueRef at = lb_gep(L, et, k->y, LLVMBuildAdd(L->b, mul64(L, m, k->d->N), n0, ""));
  if (cnt == BN) {
    lb_store(L, v, at, 1);
    return;
  }
  for (int l = 0; l < cnt; l++)
    lb_store(L, LLVMBuildExtractElement(L->b, v, lb_c32(L, l), ""), lb_gep(L, et, at, lb_c64(L, l)), 1);
}

/* Column block nb (8 columns, cnt valid) for every row. */
static void bblock(lb_lw *L, const bk *k, LLVMValueRef nb, int cnt) {
  const lb_bdense *d = k->d;
  int64_t words = words_of(d);
  LLVMTypeRef v64 = vec(L->t_i64, BN), v32 = vec(L->t_i32, BN);
  LLVMValueRef n0 = mul64(L, nb, BN), wblk = lb_gep(L, L->t_i64, k->w, mul64(L, nb, words * BN));
  LLVMValueRef bias = lb_load(L, v32, lb_gep(L, L->t_i32, k->bias, n0), 4);
  LLVMValueRef mul = lb_load(L, vec(L->t_f32, BN), lb_gep(L, L->t_f32, k->mul, n0), 4);
  lb_loop lm, lw;
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, d->M), 1);
  LLVMValueRef slot = lb_alloca(L, v64, LLVMConstNull(v64));
  LLVMValueRef xrow = lb_gep(L, L->t_i64, k->xb, mul64(L, lm.iv, words));
  lb_loop_begin(L, &lw, lb_c64(L, 0), lb_c64(L, words), 1);
  LLVMValueRef xw = lb_splat(L, lb_load(L, L->t_i64, lb_gep(L, L->t_i64, xrow, lw.iv), 8), BN);
  LLVMValueRef wv = lb_load(L, v64, lb_gep(L, L->t_i64, wblk, mul64(L, lw.iv, BN)), 64);
  LLVMValueRef pc = LLVMBuildXor(L->b, xw, wv, "");
  pc = lb_intr(L, "llvm.ctpop", v64, &pc, 1);
  lb_store(L, LLVMBuildAdd(L->b, lb_load(L, v64, slot, 64), pc, ""), slot, 64);
  lb_loop_end(L, &lw);
  LLVMValueRef mism = LLVMBuildTrunc(L->b, lb_load(L, v64, slot, 64), v32, "");
  LLVMValueRef acc = LLVMBuildSub(L->b, bias, LLVMBuildShl(L->b, mism, lb_ci(L, v32, 1), ""), "");
  /* as the interpreter: requantized also when y is i32 */
  acc = lb_qrequant(L, NULL, acc, mul, NULL, NULL, d->zy, d->lo, d->hi);
  bstore(L, k, acc, lm.iv, n0, cnt);
  lb_loop_end(L, &lm);
}

int lb_bdense_emit(lb_lw *L, const lb_bdense *d, const char *name) {
  bk k = {.d = d};
  LB_TRY(bdense_consts(L, d, &k.w, &k.bias, &k.mul));
  LLVMValueRef fn = lb_fn_begin(L, name, 3);
  LLVMSetLinkage(fn, LLVMExternalLinkage);
  LLVMValueRef x = LLVMGetParam(fn, 0);
  k.y = LLVMGetParam(fn, 1), k.xb = LLVMGetParam(fn, 2);
  lb_loop lm;
  lb_loop_begin(L, &lm, lb_c64(L, 0), lb_c64(L, d->M), 1);
  binarize_row(L, d, x, k.xb, lm.iv);
  lb_loop_end(L, &lm);
  int64_t full = d->N / BN;
  if (full > 0) {
    lb_loop ln;
    lb_loop_begin(L, &ln, lb_c64(L, 0), lb_c64(L, full), 1);
    bblock(L, &k, ln.iv, BN);
    lb_loop_end(L, &ln);
  }
  if (d->N % BN) bblock(L, &k, lb_c64(L, full), (int)(d->N % BN));
  LLVMBuildRetVoid(L->b);
  return 0;
}

/* ---- the hook ops_int.c calls ----------------------------------------------------------- */

static int sub_enabled(void) {
  const char *e = getenv("LB_SUBBYTE");
  return !(e && !strcmp(e, "0"));
}

/* The widest of 2 and 4 bits needed over all groups (0: some element needs 8). */
static int groups_bits(const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp, int64_t Np) {
  size_t esz = s->wide ? 2 : 1;
  int bits = 2;
  for (int64_t g = 0; g < G && bits; g++) {
    lb_qpacked p = {0, 0, Kp, Np, (char *)b + (size_t)(g * Kp * Np) * esz, 0, NULL};
    int gb = lb_sub_bits_for(s, &p);
    bits = gb == 0 ? 0 : gb > bits ? gb : bits;
  }
  return bits;
}

void lb_subw_shape(lb_lw *L, const int16_t *wp, int64_t count, lb_qk_shape *s) {
  if (!sub_enabled() || count <= 0) return;
  int lo = 0, hi = 0;
  for (int64_t i = 0; i < count; i++) lo = wp[i] < lo ? wp[i] : lo, hi = wp[i] > hi ? wp[i] : hi;
  lb_qk_shape n = lb_sub_shape(L->spec, s);
  if ((lo >= -8 && hi <= 7) ||
      (-lo <= LB_SUB_NARROW_WMAX && hi <= LB_SUB_NARROW_WMAX && lb_sub_kernel(&n) == LB_SUBK_MADDUBS))
    *s = n;
}

/* Largest |element| of G packed groups of 8-bit B. */
static int b_wmax(const void *b, int64_t count) {
  int m = 0;
  for (int64_t i = 0; i < count; i++) {
    int v = ((const int8_t *)b)[i];
    m = v > m ? v : -v > m ? -v : m;
  }
  return m;
}

int lb_sub_narrow(const lb_qk_shape *s, int64_t Kp, int64_t Np, int wmax, lb_subpacked *out) {
  if (s->wide || lb_sub_kernel(s) != LB_SUBK_MADDUBS || wmax > LB_SUB_NARROW_WMAX) return 0;
  *out = (lb_subpacked){.bits = 8, .chunk = lb_sub_chunk(s), .wmax = wmax, .wide = 0,
                        .panel_elems = Kp * s->nr, .panel_bytes = Kp * s->nr,
                        .n_panels = Np / s->nr};
  return 1;
}

/* Narrow int8 weights on the vpmaddubsw kernel: the packed B bytes as they are. */
static int narrow_try(lb_lw *L, const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp,
                      int64_t Np, lb_subw *w, LLVMValueRef *blob) {
  if (s->wide || !lb_sub_narrow(s, Kp, Np, b_wmax(b, G * Kp * Np), &w->geom)) return 0;
  w->bits = 8;
  w->group_bytes = Kp * Np;
  *blob = lb_const_blob(L, b, (size_t)(G * Kp * Np), "qb_n8");
  return 0;
}

int lb_subw_try(lb_lw *L, const lb_qk_shape *s, const void *b, int64_t G, int64_t Kp,
                int64_t Np, lb_subw *w, LLVMValueRef *blob) {
  memset(w, 0, sizeof *w);
  int bits = sub_enabled() && Kp * Np > 0 ? groups_bits(s, b, G, Kp, Np) : 0;
  if (!bits) return sub_enabled() && Kp * Np > 0 ? narrow_try(L, s, b, G, Kp, Np, w, blob) : 0;
  size_t esz = s->wide ? 2 : 1;
  uint8_t *all = NULL;
  for (int64_t g = 0; g < G; g++) {
    lb_qpacked p = {0, 0, Kp, Np, (char *)b + (size_t)(g * Kp * Np) * esz, 0, NULL};
    lb_subpacked sp;
    if (lb_subpack(s, &p, bits, &sp)) return lb_free(all), LB_ERR_NOMEM;
    if (!all) all = lb_malloc((size_t)G * sp.b_bytes + 1);
    if (!all) return lb_subpacked_free(&sp), LB_ERR_NOMEM;
    memcpy(all + (size_t)g * sp.b_bytes, sp.b, sp.b_bytes);
    int wmax = w->geom.wmax > sp.wmax ? w->geom.wmax : sp.wmax;
    w->geom = sp, w->geom.b = NULL, w->geom.wmax = wmax, w->group_bytes = (int64_t)sp.b_bytes;
    lb_subpacked_free(&sp);
  }
  w->bits = bits;
  *blob = lb_const_blob(L, all, (size_t)(G * w->group_bytes), bits == 4 ? "qb_i4" : "qb_i2");
  lb_free(all);
  return 0;
}

LLVMValueRef lb_subw_group(lb_lw *L, const lb_subw *w, LLVMValueRef blob, LLVMValueRef g) {
  return lb_gep(L, L->t_i8, blob, mul64(L, g, w->group_bytes));
}

LLVMValueRef lb_subw_place(lb_lw *L, const lb_subw *w, const lb_qk_shape *s, int64_t Kp,
                           LLVMValueRef scratch, size_t *scratch_bytes) {
  if (!w->bits) return NULL;
  size_t at = (*scratch_bytes + 63) / 64 * 64;
  *scratch_bytes = at + lb_subgemm_scratch(s, Kp);
  return lb_gep(L, L->t_i8, scratch, lb_c64(L, (int64_t)at));
}

void lb_subw_gemm(lb_lw *L, const lb_qgemm_job *j, const lb_subw *w, LLVMValueRef buf,
                  LLVMValueRef a_pk, LLVMValueRef row0, LLVMValueRef rows) {
  if (!w->bits) {
    lb_qgemm_emit(L, j, a_pk, row0, rows);
    return;
  }
  lb_subgemm_emit(L, j, &w->geom, j->b, buf, a_pk, row0, rows);
}
