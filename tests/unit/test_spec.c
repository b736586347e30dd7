/* Target spec tests: every bundled spec loads with the figures its file declares; extends
 * merging, removal with ~, YAML anchors; the show output loads back to the same spec; every
 * malformed spec in tests/specs/bad/ fails with its golden message (LB_UPDATE_GOLDEN=1
 * rewrites them); host detection from canned /proc/cpuinfo texts and against LLVM's own view
 * of this machine; out-of-memory paths; `lowbit spec` exit codes. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spec.h"
#include "spec_int.h"
#include "../silence.h"

static lb_spec *load_ok(const char *name) {
  lb_spec *s = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load(name, &s, &d);
  ck_assert_msg(rc == 0, "%s: %s", name, d.msg);
  return s;
}

static int load_buf(const char *text, lb_spec **s, lb_diag *d) {
  lb_diag_clear(d);
  return lb_spec_load_buffer(text, strlen(text), "<test>", s, d);
}

/* ---- bundled specs ---------------------------------------------------------------------- */

START_TEST(bundled_all_load) {
  char **names;
  lb_diag d;
  lb_diag_clear(&d);
  int n = lb_spec_list_names(&names, &d);
  ck_assert_int_ge(n, 7);
  for (int i = 0; i < n; i++) {
    lb_spec *s = load_ok(names[i]);
    ck_assert_str_eq(lb_spec_name(s), names[i]); /* file name and name: agree */
    ck_assert_double_gt(lb_spec_fp32_peak_macs(s), 0);
    ck_assert_double_gt(lb_spec_int8_peak_macs(s), lb_spec_fp32_peak_macs(s));
    ck_assert_int_gt(lb_spec_cache_bytes(s, 1), 0);
    ck_assert_int_eq(lb_spec_cache_bytes(s, 4), 0);
    lb_spec_free(s);
  }
  lb_spec_names_free(names, n);
}
END_TEST

/* The figures each bundled file declares (directly or through extends), by hand. */
static const struct {
  const char *name, *isa, *cpu;
  int vbits, vregs, levels;
  double int8, fp32, ghz;
  int64_t l1, l2;
} bundled[] = {
    /* name               isa          llvm cpu      vbits regs lv int8 fp32 GHz  L1      L2 */
    {"x86-64-avx2", "avx2", "x86-64-v3", 256, 16, 3, 32, 16, 2.6, 32768, 1 << 20},
    {"x86-64-avx512-vnni", "avx512vnni", "cascadelake", 512, 32, 3, 128, 32, 2.5, 32768, 1 << 20},
    {"x86-64-zen4", "avx512vnni", "znver4", 512, 32, 3, 64, 16, 2.6, 32768, 1 << 20},
    {"x86-64-zen5", "avx512vnni", "znver5", 512, 32, 3, 128, 32, 2.6, 49152, 1 << 20},
    {"aarch64-neon", "neon", "cortex-a72", 128, 32, 2, 8, 4, 1.5, 32768, 1 << 20},
    {"aarch64-dotprod", "neondot", "neoverse-n1", 128, 32, 3, 32, 8, 2.5, 65536, 1 << 20},
    {"aarch64-i8mm", "neoni8mm", "neoverse-n2", 128, 32, 3, 64, 8, 3.0, 65536, 1 << 20},
};

START_TEST(bundled_figures) {
  lb_spec *s = load_ok(bundled[_i].name);
  ck_assert_str_eq(lb_spec_isa(s), bundled[_i].isa);
  ck_assert_str_eq(lb_spec_llvm_cpu(s), bundled[_i].cpu);
  ck_assert_int_eq(lb_spec_vector_bits(s), bundled[_i].vbits);
  ck_assert_int_eq(lb_spec_vector_registers(s), bundled[_i].vregs);
  ck_assert_int_eq(lb_spec_cache_levels(s), bundled[_i].levels);
  ck_assert_double_eq(lb_spec_int8_peak_macs(s), bundled[_i].int8);
  ck_assert_double_eq(lb_spec_fp32_peak_macs(s), bundled[_i].fp32);
  ck_assert_double_eq(lb_spec_clock_ghz(s), bundled[_i].ghz);
  ck_assert_int_eq(lb_spec_cache_bytes(s, 1), bundled[_i].l1);
  ck_assert_int_eq(lb_spec_cache_bytes(s, 2), bundled[_i].l2);
  ck_assert_int_eq(lb_spec_is_host(s), 0);
  lb_spec_free(s);
}
END_TEST

/* Values that come through two levels of extends and a per-combination override. */
START_TEST(extends_merges_maps) {
  lb_spec *s = load_ok("aarch64-i8mm");
  const lb_spec_combo *u8 = lb_spec_find(s, LB_SPEC_CONV2D, LB_DTYPE_U8, LB_DTYPE_I8);
  ck_assert_ptr_nonnull(u8);
  ck_assert_int_eq(u8->kernel, LB_KERNEL_SMMLA);                 /* i8mm */
  ck_assert_double_eq(u8->macs_per_cycle, 64);                   /* i8mm */
  ck_assert_uint_eq(u8->act_scheme, LB_SCHEME_ASYMMETRIC);       /* dotprod */
  ck_assert_uint_eq(u8->granularity, LB_GRAN_PER_TENSOR | LB_GRAN_PER_CHANNEL);
  ck_assert_int_eq(u8->narrow_range, 0);                         /* dotprod replaced neon's */
  ck_assert_ptr_nonnull(strstr(lb_spec_llvm_features(s), "-sve"));
  ck_assert_double_eq(lb_spec_dram_bytes_per_cycle(s), 4);     /* dotprod */
  /* the neon base's narrow-range smlal depthwise kernel is inherited untouched */
  const lb_spec_combo *dw = lb_spec_find(s, LB_SPEC_DEPTHWISE_CONV2D, LB_DTYPE_I8, LB_DTYPE_I8);
  ck_assert_ptr_nonnull(dw);
  ck_assert_int_eq(dw->narrow_range, 1);
  ck_assert_int_eq(dw->kernel, LB_KERNEL_SMLAL);
  /* matmul: i8 re-costed, f32 from dotprod, nothing else */
  const lb_spec_combo *c;
  ck_assert_uint_eq(lb_spec_combos(s, LB_SPEC_MATMUL, &c), 2);
  ck_assert_double_eq(lb_spec_find(s, LB_SPEC_MATMUL, LB_DTYPE_I8, LB_DTYPE_I8)->efficiency, 0.6);
  ck_assert_ptr_null(lb_spec_find(s, LB_SPEC_MATMUL, LB_DTYPE_U8, LB_DTYPE_I8));
  lb_spec_free(s);
}
END_TEST

START_TEST(find_and_rates) {
  lb_spec *s = load_ok("x86-64-avx2");
  const lb_spec_combo *c = lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_I8, LB_DTYPE_I4);
  ck_assert_ptr_nonnull(c);
  ck_assert_double_eq_tol(lb_spec_combo_rate(c), 64 * 0.54, 1e-9);
  ck_assert_int_eq(c->weight_scheme, LB_SCHEME_SYMMETRIC | LB_SCHEME_ASYMMETRIC);
  c = lb_spec_find(s, LB_SPEC_ADD, LB_DTYPE_U8, LB_DTYPE_COUNT);
  ck_assert_ptr_nonnull(c);
  ck_assert_double_eq_tol(lb_spec_combo_rate(c), 16 * 0.16, 1e-9);
  ck_assert_int_eq(c->requant, LB_REQUANT_FP32);
  c = lb_spec_find(s, LB_SPEC_CONCAT, LB_DTYPE_I8, LB_DTYPE_COUNT);
  ck_assert_int_eq(c->requant, LB_REQUANT_NONE); /* a copy keeps its dtype: default none */
  /* absent combinations: the compiler leaves such ops in fp32 */
  ck_assert_ptr_null(lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_U8, LB_DTYPE_I4));
  ck_assert_ptr_null(lb_spec_find(s, LB_SPEC_MATMUL, LB_DTYPE_U8, LB_DTYPE_I8));
  lb_spec_free(s);
  s = load_ok("aarch64-neon");
  ck_assert_ptr_null(lb_spec_find(s, LB_SPEC_MATMUL, LB_DTYPE_I8, LB_DTYPE_I8));
  ck_assert_int_eq(lb_spec_cache_bytes(s, 3), 0);
  lb_spec_mem m;
  ck_assert_int_eq(lb_spec_memory(s, 3, &m), -1);
  ck_assert_int_eq(lb_spec_memory(s, 2, &m), 0);
  ck_assert_double_eq(m.bytes_per_cycle, 8);
  lb_spec_free(s);
}
END_TEST

/* ---- user specs: extends by path, removal, anchors, LOWBIT_SPEC_DIR ----------------------- */

START_TEST(user_specs) {
  ck_assert_int_eq(chdir(LB_SOURCE_DIR), 0);
  lb_spec *s = load_ok("tests/specs/good/rpi4-1800.yaml");
  ck_assert_double_eq(lb_spec_clock_ghz(s), 1.8);
  ck_assert_double_eq(lb_spec_dram_bytes_per_cycle(s), 1.7);
  ck_assert_int_eq(lb_spec_cache_bytes(s, 1), 32768); /* memory.l1 kept from the base */
  ck_assert_double_eq(lb_spec_int8_peak_macs(s), 8);
  lb_spec_free(s);

  s = load_ok("tests/specs/good/no-low-bit.yaml");
  const lb_spec_combo *c;
  ck_assert_uint_eq(lb_spec_combos(s, LB_SPEC_CONV2D, &c), 3);
  ck_assert_uint_eq(lb_spec_combos(s, LB_SPEC_DENSE, &c), 9); /* dense was its own key */
  ck_assert_uint_eq(lb_spec_combos(s, LB_SPEC_POOL, &c), 0);
  ck_assert_ptr_null(lb_spec_find(s, LB_SPEC_CONV2D, LB_DTYPE_I8, LB_DTYPE_I4));
  lb_spec_free(s);

  s = load_ok("tests/specs/good/anchors.yaml");
  ck_assert_uint_eq(lb_spec_combos(s, LB_SPEC_DENSE, &c), 2);
  ck_assert_int_eq(lb_spec_find(s, LB_SPEC_DENSE, LB_DTYPE_I8, LB_DTYPE_I8)->requant,
                   LB_REQUANT_FIXED_POINT);
  ck_assert_double_eq(lb_spec_find(s, LB_SPEC_MATMUL, LB_DTYPE_F32, LB_DTYPE_F32)->macs_per_cycle,
                      2);
  ck_assert_str_eq(lb_spec_description(s), "quoted: with a colon");
  lb_spec_free(s);

  ck_assert_int_eq(setenv("LOWBIT_SPEC_DIR", "tests/specs/lib", 1), 0);
  s = load_ok("minimal");
  ck_assert_str_eq(lb_spec_dir(), "tests/specs/lib");
  ck_assert_double_eq(lb_spec_fp32_peak_macs(s), 16);
  ck_assert_double_eq(lb_spec_int8_peak_macs(s), 0);
  lb_spec_free(s);
  unsetenv("LOWBIT_SPEC_DIR");
}
END_TEST

START_TEST(unknown_name_suggests) {
  lb_spec *s;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_load("x86-64-avx", &s, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "spec 'x86-64-avx': no such bundled spec (did you mean 'x86-64-avx2'?)");
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_load("/nonexistent/dir/x.yaml", &s, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/dir/x.yaml: error: cannot open"));
  ck_assert_int_eq(lb_edit_distance("kitten", "sitting"), 3);
  ck_assert_int_eq(lb_edit_distance("", "abc"), 3);
}
END_TEST

/* ---- show: canonical YAML loads back to the same spec ------------------------------------ */

static void assert_same(const lb_spec *a, const lb_spec *b) {
  ck_assert_str_eq(lb_spec_name(a), lb_spec_name(b));
  ck_assert_str_eq(lb_spec_description(a), lb_spec_description(b));
  ck_assert_str_eq(lb_spec_llvm_triple(a), lb_spec_llvm_triple(b));
  ck_assert_str_eq(lb_spec_llvm_cpu(a), lb_spec_llvm_cpu(b));
  ck_assert_str_eq(lb_spec_llvm_features(a), lb_spec_llvm_features(b));
  ck_assert_int_eq(lb_spec_vector_bits(a), lb_spec_vector_bits(b));
  ck_assert_double_eq(lb_spec_clock_ghz(a), lb_spec_clock_ghz(b));
  ck_assert_int_eq(a->n_levels, b->n_levels);
  ck_assert_int_eq(memcmp(a->mem, b->mem, sizeof a->mem), 0);
  ck_assert_double_eq(a->dram_bytes_per_cycle, b->dram_bytes_per_cycle);
  ck_assert_uint_eq(a->n_requires, b->n_requires);
  ck_assert_uint_eq(a->n_match, b->n_match);
  for (int k = 0; k < LB_SPEC_OPKIND_COUNT; k++) {
    ck_assert_uint_eq(a->n_combos[k], b->n_combos[k]);
    for (size_t i = 0; i < a->n_combos[k]; i++) {
      lb_spec_combo x = a->combos[k][i], y = b->combos[k][i];
      ck_assert_str_eq(x.label, y.label);
      x.label = y.label = NULL, x.file = y.file = NULL, x.line = y.line = 0;
      ck_assert_int_eq(memcmp(&x, &y, sizeof x), 0);
    }
  }
}

START_TEST(show_round_trips) {
  char **names;
  lb_diag d;
  lb_diag_clear(&d);
  int n = lb_spec_list_names(&names, &d);
  for (int i = 0; i < n; i++) {
    lb_spec *a = load_ok(names[i]), *b;
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    lb_spec_write(a, f);
    fclose(f);
    lb_diag_clear(&d);
    ck_assert_msg(lb_spec_load_buffer(text, len, "<show>", &b, &d) == 0, "%s: %s", names[i], d.msg);
    ck_assert_ptr_null(strstr(text, "\nextends:"));
    assert_same(a, b);
    free(text);
    lb_spec_free(a);
    lb_spec_free(b);
  }
  lb_spec_names_free(names, n);
}
END_TEST

/* ---- malformed specs: golden messages ---------------------------------------------------- */

static char *bad_files[64];
static int n_bad;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_bad(void) {
  DIR *dir = opendir(LB_SOURCE_DIR "/tests/specs/bad");
  struct dirent *e;
  while (dir && (e = readdir(dir)) && n_bad < 64) {
    size_t len = strlen(e->d_name);
    if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0) bad_files[n_bad++] = strdup(e->d_name);
  }
  if (dir) closedir(dir);
  qsort(bad_files, (size_t)n_bad, sizeof *bad_files, cmp_str);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

START_TEST(malformed_golden) {
  char path[512], expected_path[512];
  ck_assert_int_eq(chdir(LB_SOURCE_DIR), 0);
  ck_assert_int_eq(setenv("LOWBIT_SPEC_DIR", "specs", 1), 0); /* relative: stable messages */
  snprintf(path, sizeof path, "tests/specs/bad/%s", bad_files[_i]);
  snprintf(expected_path, sizeof expected_path, "%.*s.expected", (int)strlen(path) - 5, path);
  lb_spec *s = NULL;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load(path, &s, &d);
  ck_assert_msg(rc == LB_ERR_INPUT, "%s loaded (rc %d)", path, rc);
  ck_assert_ptr_null(s);
  char *got;
  size_t len;
  FILE *f = open_memstream(&got, &len);
  lb_spec_print_diag(f, &d);
  fclose(f);
  if (getenv("LB_UPDATE_GOLDEN")) {
    FILE *out = fopen(expected_path, "wb");
    ck_assert_ptr_nonnull(out);
    fputs(got, out);
    fclose(out);
  }
  const char *want = slurp(expected_path);
  ck_assert_msg(want != NULL, "%s missing (LB_UPDATE_GOLDEN=1 writes it)", expected_path);
  ck_assert_str_eq(got, want);
  /* one located line first: FILE:LINE:COL: error: */
  ck_assert_ptr_nonnull(strstr(got, ": error: "));
  free(got);
  unsetenv("LOWBIT_SPEC_DIR");
}
END_TEST

START_TEST(malformed_count) { ck_assert_int_ge(n_bad, 15); }
END_TEST

START_TEST(malformed_buffers) {
  lb_spec *s;
  lb_diag d;
  char deep[200];
  memset(deep, '[', sizeof deep - 1);
  deep[sizeof deep - 1] = 0;
  ck_assert_int_eq(load_buf(deep, &s, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "nesting deeper than"));
  ck_assert_int_eq(load_buf("name: a\nx: &a [*a]\n", &s, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "unknown anchor 'a'"));
  ck_assert_int_eq(load_buf("- a\n- b\n", &s, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "<test>:1:1: error: a spec is a mapping of keys (name, llvm, isa, ...)");
  ck_assert_int_eq(load_buf("name: x\n{a: 1}: 2\n", &s, &d), LB_ERR_INPUT);
  /* a buffer extends bundled specs by name, with the error located in the buffer */
  ck_assert_int_eq(load_buf("name: x\nextends: x86-64-avx2\nclock_ghz: -1\n", &s, &d),
                   LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "<test>:3:12: error: 'clock_ghz' is -1; it must be above 0 and at "
                          "most 20");
  /* user text with a newline (found by fuzz_spec) is escaped: the message stays one line */
  ck_assert_int_eq(load_buf("name: x\nextends: \"a b\\nc\"\n", &s, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, "<test>:2:10: error: extends 'a b\\nc': not a spec name or a path");
  ck_assert_int_eq(load_buf("name: x\nextends: x86-64-avx2\nclock_ghz: 3.5\n", &s, &d), 0);
  ck_assert_double_eq(lb_spec_clock_ghz(s), 3.5);
  lb_spec_free(s);
}
END_TEST

/* ---- host detection ---------------------------------------------------------------------- */

#define X86_V3 "fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm movbe xsave avx avx2 " \
               "fma f16c bmi1 bmi2 abm"
#define X86_512 " avx512f avx512cd avx512bw avx512dq avx512vl avx512_vnni avx512_vpopcntdq"

static const struct {
  const char *cpuinfo, *arch, *pick, *cpu, *has, *lacks;
} hosts[] = {
    /* cpuinfo text                                     arch  picks  cpu  feature in, not in */
    {"vendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: " X86_V3 "\n", "x86_64",
     "x86-64-avx2", "x86-64-v3", "+avx2", "+avx512f"},
    {"vendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: " X86_V3 X86_512 "\n", "x86_64",
     "x86-64-avx512-vnni", "x86-64-v4", "+avx512vnni", "-avx2"},
    {"vendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: " X86_V3 X86_512 "\n", "x86_64",
     "x86-64-zen4", "x86-64-v4", "+avx512vpopcntdq", "+avxvnni"},
    {"vendor_id\t: AuthenticAMD\ncpu family\t: 26\nflags\t\t: " X86_V3 X86_512 "\n", "x86_64",
     "x86-64-zen5", "x86-64-v4", "+avx512vnni", "+avx512fp16"},
    {"processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n", "aarch64",
     "aarch64-neon", "generic", "+neon", "+dotprod"},
    {"Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n", "aarch64",
     "aarch64-dotprod", "generic", "+dotprod", "+i8mm"},
    {"Features\t: fp asimd asimddp sve sve2 i8mm bf16\n", "aarch64", "aarch64-i8mm", "generic",
     "+i8mm", "+sve"}, /* the spec's -sve wins over the CPU's sve */
};

START_TEST(host_from_cpuinfo) {
  lb_spec *s;
  lb_diag d;
  lb_diag_clear(&d);
  int rc = lb_spec_load_host_from(hosts[_i].cpuinfo, hosts[_i].arch, &s, &d);
  ck_assert_msg(rc == 0, "%s", d.msg);
  ck_assert_str_eq(lb_spec_name(s), hosts[_i].pick);
  ck_assert_str_eq(lb_spec_llvm_cpu(s), hosts[_i].cpu);
  ck_assert_int_eq(lb_spec_is_host(s), 1);
  char feat[2048];
  snprintf(feat, sizeof feat, ",%s,", lb_spec_llvm_features(s));
  char want[64], not_want[64];
  snprintf(want, sizeof want, ",%s,", hosts[_i].has);
  snprintf(not_want, sizeof not_want, ",%s,", hosts[_i].lacks);
  ck_assert_msg(strstr(feat, want) != NULL, "%s lacks %s", feat, want);
  ck_assert_msg(strstr(feat, not_want) == NULL, "%s has %s", feat, not_want);
  lb_spec_free(s);
}
END_TEST

START_TEST(host_no_match) {
  lb_spec *s;
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_load_host_from("flags\t: fpu sse sse2\n", "x86_64", &s, &d),
                   LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "no bundled spec"));
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_load_host_from("isa\t: rv64imafdc\n", "riscv64", &s, &d), LB_ERR_INPUT);
  char *f = lb_spec_host_features("Features\t: fp asimd\n", "aarch64");
  ck_assert_ptr_nonnull(strstr(f, "+fp-armv8,+neon,-dotprod,-i8mm"));
  lb_free(f);
}
END_TEST

/* The host spec claims nothing LLVM's own detection of this machine denies. */
START_TEST(host_agrees_with_llvm) {
  lb_spec *s = load_ok("host");
  char *llvm = LLVMGetHostCPUFeatures();
  char all[8192];
  snprintf(all, sizeof all, ",%s,", llvm);
  const char *p = lb_spec_llvm_features(s);
  int checked = 0;
  while (*p) {
    size_t len = strcspn(p, ",");
    char item[80], plus[84];
    snprintf(item, sizeof item, "%.*s", (int)len, p);
    snprintf(plus, sizeof plus, ",+%s,", item + 1);
    if (item[0] == '+')
      ck_assert_msg(strstr(all, plus) != NULL, "we pass %s, LLVM's host list lacks it", item);
    else if (strcmp(item, "-sve") && strcmp(item, "-sve2")) /* a spec may switch features off */
      ck_assert_msg(strstr(all, plus) == NULL, "we pass %s, LLVM says the host has it", item);
    checked++;
    p += len + (p[len] == ',');
  }
  ck_assert_int_ge(checked, 10);
  LLVMDisposeMessage(llvm);
  lb_diag d;
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_host_check(s, &d), 0);
  lb_spec_free(s);
  /* a spec for another architecture is refused by name of what is missing */
  s = load_ok("aarch64-neon");
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_spec_host_check(s, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, "aarch64"));
  lb_spec_free(s);
}
END_TEST

/* ---- op kinds of IR nodes ---------------------------------------------------------------- */

START_TEST(opkind_of_nodes) {
  lb_graph *g = lb_graph_new("k");
  int64_t xd[4] = {1, 8, 5, 5}, wd[4] = {8, 1, 3, 3}, w2d[4] = {4, 8, 1, 1}, md[2] = {8, 4};
  float wdat[72] = {0}, w2dat[32] = {0}, mdat[32] = {0};
  uint32_t x = lb_graph_add_value(g, "x", LB_DTYPE_F32, 4, xd);
  uint32_t w = lb_graph_add_const(g, "w", LB_DTYPE_F32, 4, wd, wdat, sizeof wdat);
  uint32_t w2 = lb_graph_add_const(g, "w2", LB_DTYPE_F32, 4, w2d, w2dat, sizeof w2dat);
  uint32_t m = lb_graph_add_const(g, "m", LB_DTYPE_F32, 2, md, mdat, sizeof mdat);
  uint32_t y = lb_graph_add_value(g, "y", LB_DTYPE_F32, 4, xd);
  uint32_t z = lb_graph_add_value(g, "z", LB_DTYPE_F32, 4, xd);
  uint32_t in_dw[2] = {x, w}, in_pw[2] = {y, w2}, in_mm[2] = {x, m}, in_mm2[2] = {x, y};
  uint32_t n_dw = lb_graph_add_node(g, LB_OP_CONV, "dw", in_dw, 2, &y, 1);
  g->nodes[n_dw].attr.group = 8, g->nodes[n_dw].attr.n_spatial = 2;
  uint32_t n_pw = lb_graph_add_node(g, LB_OP_CONV, "pw", in_pw, 2, &z, 1);
  g->nodes[n_pw].attr.group = 1, g->nodes[n_pw].attr.n_spatial = 2;
  uint32_t o1 = lb_graph_add_value(g, "o1", LB_DTYPE_F32, 0, NULL);
  uint32_t o2 = lb_graph_add_value(g, "o2", LB_DTYPE_F32, 0, NULL);
  uint32_t o3 = lb_graph_add_value(g, "o3", LB_DTYPE_F32, 0, NULL);
  uint32_t o4 = lb_graph_add_value(g, "o4", LB_DTYPE_F32, 0, NULL);
  uint32_t n_mm = lb_graph_add_node(g, LB_OP_MATMUL, "mm", in_mm, 2, &o1, 1);
  uint32_t n_mm2 = lb_graph_add_node(g, LB_OP_MATMUL, "mm2", in_mm2, 2, &o2, 1);
  uint32_t n_sub = lb_graph_add_node(g, LB_OP_SUB, "sub", in_mm2, 2, &o3, 1);
  uint32_t n_sm = lb_graph_add_node(g, LB_OP_SOFTMAX, "sm", &x, 1, &o4, 1);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_dw), LB_SPEC_DEPTHWISE_CONV2D);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_pw), LB_SPEC_CONV2D);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_mm), LB_SPEC_DENSE);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_mm2), LB_SPEC_MATMUL);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_sub), LB_SPEC_ADD);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_sm), -1);
  /* (ops) div by a constant is mul, by an activation nothing; reduce_mean is pool */
  uint32_t o5 = lb_graph_add_value(g, "o5", LB_DTYPE_F32, 0, NULL);
  uint32_t o6 = lb_graph_add_value(g, "o6", LB_DTYPE_F32, 0, NULL);
  uint32_t o7 = lb_graph_add_value(g, "o7", LB_DTYPE_F32, 0, NULL);
  uint32_t in_dc[2] = {x, m};
  uint32_t n_dc = lb_graph_add_node(g, LB_OP_DIV, "dc", in_dc, 2, &o5, 1);
  uint32_t n_dv = lb_graph_add_node(g, LB_OP_DIV, "dv", in_mm2, 2, &o6, 1);
  uint32_t n_rm = lb_graph_add_node(g, LB_OP_REDUCE_MEAN, "rm", &x, 1, &o7, 1);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_dc), LB_SPEC_MUL);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_dv), -1);
  ck_assert_int_eq(lb_spec_opkind_of(g, n_rm), LB_SPEC_POOL);
  lb_spec_opkind k;
  ck_assert_int_eq(lb_spec_opkind_from_name("depthwise_conv2d", &k), 0);
  ck_assert_int_eq(k, LB_SPEC_DEPTHWISE_CONV2D);
  ck_assert_int_eq(lb_spec_opkind_has_weight(LB_SPEC_POOL), 0);
  lb_graph_free(g);
}
END_TEST

/* ---- out of memory ----------------------------------------------------------------------- */

static long fail_at, calls;
static void *failing_alloc(void *p, size_t n) {
  if (n == 0) {
    free(p);
    return NULL;
  }
  if (++calls == fail_at) return NULL;
  return p ? realloc(p, n) : malloc(n);
}

START_TEST(out_of_memory) {
  int done = 0;
  for (fail_at = 1; !done && fail_at < 5000; fail_at++) {
    calls = 0;
    lb_set_allocator(failing_alloc);
    lb_spec *s = NULL;
    lb_diag d;
    lb_diag_clear(&d);
    int rc = lb_spec_load("aarch64-i8mm", &s, &d);
    lb_set_allocator(NULL);
    if (rc == 0) {
      done = 1;
      lb_spec_free(s);
    } else {
      ck_assert_msg(rc == LB_ERR_NOMEM, "fail at %ld: rc %d (%s)", fail_at, rc, d.msg);
    }
  }
  ck_assert_int_eq(done, 1);
  ck_assert_int_gt(fail_at, 5); /* the arena allocates in chunks: few calls, each checked */
}
END_TEST

/* ---- lowbit spec ------------------------------------------------------------------------- */

static int run_cmd(const char *a, const char *b, const char *c) {
  char *argv[] = {"spec", (char *)a, (char *)b, (char *)c, NULL};
  int argc = c ? 4 : b ? 3 : a ? 2 : 1;
  return lb_test_silenced(lb_cmd_spec, argc, argv);
}

START_TEST(cli_exit_codes) {
  ck_assert_int_eq(chdir(LB_SOURCE_DIR), 0);
  ck_assert_int_eq(run_cmd("check", "specs/x86-64-avx2.yaml", "tests/specs/good/anchors.yaml"),
                   0);
  ck_assert_int_eq(run_cmd("check", "specs/aarch64-neon.yaml", "tests/specs/bad/empty.yaml"), 2);
  ck_assert_int_eq(run_cmd("show", "aarch64-dotprod", NULL), 0);
  ck_assert_int_eq(run_cmd("show", "no-such-spec", NULL), 2);
  ck_assert_int_eq(run_cmd("show", NULL, NULL), 2);
  ck_assert_int_eq(run_cmd("list", NULL, NULL), 0);
  ck_assert_int_eq(run_cmd("frobnicate", NULL, NULL), 2);
  ck_assert_int_eq(run_cmd(NULL, NULL, NULL), 2);
}
END_TEST

int main(void) {
  find_bad();
  Suite *s = suite_create("spec");
  TCase *tc = tcase_create("spec");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, bundled_all_load);
  tcase_add_loop_test(tc, bundled_figures, 0, (int)(sizeof bundled / sizeof bundled[0]));
  tcase_add_test(tc, extends_merges_maps);
  tcase_add_test(tc, find_and_rates);
  tcase_add_test(tc, user_specs);
  tcase_add_test(tc, unknown_name_suggests);
  tcase_add_test(tc, show_round_trips);
  tcase_add_loop_test(tc, malformed_golden, 0, n_bad);
  tcase_add_test(tc, malformed_count);
  tcase_add_test(tc, malformed_buffers);
  tcase_add_loop_test(tc, host_from_cpuinfo, 0, (int)(sizeof hosts / sizeof hosts[0]));
  tcase_add_test(tc, host_no_match);
  tcase_add_test(tc, host_agrees_with_llvm);
  tcase_add_test(tc, opkind_of_nodes);
  tcase_add_test(tc, out_of_memory);
  tcase_add_test(tc, cli_exit_codes);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (int i = 0; i < n_bad; i++) free(bad_files[i]);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
