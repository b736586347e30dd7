/* Unit tests for tensor files: numpy-written fixtures (tests/data/npy, made by
 * tools/make_npy_fixtures.py) read back with the values recomputed here, our writer's bytes
 * equal numpy's, malformed headers and unsupported files give one-line errors naming the file,
 * raw .bin size checks, and failed writes leave no file behind. */
#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor_io.h"

#include "../check_main.h"

#define NPY LB_SOURCE_DIR "/tests/data/npy/"
#define TMP LB_BINARY_DIR "/tio_"

static void check_shape(const lb_tensor *t, lb_dtype dt, int rank, const int64_t *dims) {
  ck_assert_int_eq(t->dtype, dt);
  ck_assert_int_eq(t->rank, rank);
  for (int i = 0; i < rank; i++) ck_assert_int_eq(t->dims[i], dims[i]);
}

static lb_tensor read_ok(const char *path) {
  lb_tensor t;
  lb_diag d = {0};
  ck_assert_msg(lb_npy_read(path, &t, &d) == 0, "%s", d.msg);
  return t;
}

START_TEST(read_numpy_f32) {
  static const char *files[] = {NPY "f32_2x3.npy", NPY "f32_v2.npy", NPY "f32_v3.npy"};
  for (int k = 0; k < 3; k++) {
    lb_tensor t = read_ok(files[k]);
    int64_t dims[2] = {2, 3};
    check_shape(&t, LB_DTYPE_F32, 2, dims);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(((float *)t.data)[i], (float)i * 0.5f - 1);
    lb_free(t.data);
  }
}
END_TEST

START_TEST(read_numpy_dtypes) {
  lb_tensor t = read_ok(NPY "f64_3.npy");
  int64_t d3[1] = {3};
  check_shape(&t, LB_DTYPE_F64, 1, d3);
  for (int i = 0; i < 3; i++) ck_assert_double_eq(((double *)t.data)[i], i / 3.0);
  lb_free(t.data);
  t = read_ok(NPY "i64_2x2x2.npy");
  int64_t d222[3] = {2, 2, 2};
  check_shape(&t, LB_DTYPE_I64, 3, d222);
  for (int i = 0; i < 8; i++) ck_assert_int_eq(((int64_t *)t.data)[i], i * -1000000000000LL);
  lb_free(t.data);
  t = read_ok(NPY "i32_4.npy");
  for (int i = 0; i < 4; i++) ck_assert_int_eq(((int32_t *)t.data)[i], i * 7 - 10);
  ck_assert_int_eq(t.dtype, LB_DTYPE_I32);
  lb_free(t.data);
  t = read_ok(NPY "i8_5.npy");
  static const int8_t i8[5] = {-128, -1, 0, 1, 127};
  ck_assert_int_eq(t.dtype, LB_DTYPE_I8);
  ck_assert_int_eq(memcmp(t.data, i8, 5), 0);
  lb_free(t.data);
  t = read_ok(NPY "u8_1x5.npy");
  int64_t d15[2] = {1, 5};
  static const uint8_t u8[5] = {0, 1, 128, 254, 255};
  check_shape(&t, LB_DTYPE_U8, 2, d15);
  ck_assert_int_eq(memcmp(t.data, u8, 5), 0);
  lb_free(t.data);
  t = read_ok(NPY "bool_4.npy");
  static const uint8_t bl[4] = {1, 0, 0, 1};
  ck_assert_int_eq(t.dtype, LB_DTYPE_BOOL);
  ck_assert_int_eq(memcmp(t.data, bl, 4), 0);
  lb_free(t.data);
  t = read_ok(NPY "f32_scalar.npy");
  check_shape(&t, LB_DTYPE_F32, 0, NULL);
  ck_assert_float_eq(*(float *)t.data, 3.25f);
  lb_free(t.data);
  t = read_ok(NPY "f32_0x3.npy");
  int64_t d03[2] = {0, 3};
  check_shape(&t, LB_DTYPE_F32, 2, d03);
  lb_free(t.data);
}
END_TEST

static const struct {
  const char *file, *msg;
} bad_files[] = {
    {"fortran.npy", "fortran_order arrays are not supported; save a C-ordered array"},
    {"big_endian.npy", "big-endian data ('>f4') is not supported; save it as '<f4'"},
    {"complex.npy", "unsupported dtype '<c8'"},
    {"object.npy", "object arrays ('|O') are not supported"},
    {"truncated.npy", "expected 24 data bytes, got 20"},
    {"trailing.npy", "expected 24 data bytes, got 28"},
    {"missing.npy", "cannot open: No such file or directory"},
};

START_TEST(read_bad_files) {
  char path[512], want[600];
  snprintf(path, sizeof path, NPY "%s", bad_files[_i].file);
  snprintf(want, sizeof want, "%s: %s", path, bad_files[_i].msg);
  lb_tensor t;
  lb_diag d = {0};
  ck_assert_int_eq(lb_npy_read(path, &t, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, want);
  ck_assert_ptr_null(t.data);
}
END_TEST

/* Hand-made headers: the dict is validated strictly. */
static const struct {
  const char *header, *msg; /* msg after "PATH: " */
} bad_headers[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", NULL}, /* the good one */
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }\n",
     "malformed .npy header at byte 53: a 1-D shape needs a trailing comma"},
    {"{'descr': '<f4', 'shape': (2,), }\n",
     "malformed .npy header at byte 33: needs the keys descr, fortran_order and shape"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",
     "malformed .npy header at byte 60: unknown key"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n",
     "malformed .npy header at byte 25: repeated key"},
    {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }\n",
     "malformed .npy header at byte 34: fortran_order must be True or False"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", /* no newline */
     "malformed .npy header at byte 0: header must end with a newline"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n",
     "shape is too large"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n",
     "malformed .npy header at byte 51: expected a dimension"},
    {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n",
     "structured dtypes are not supported"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x\n",
     "malformed .npy header at byte 58: text after the header dict"},
};

START_TEST(read_bad_headers) {
  char path[512], want[700];
  snprintf(path, sizeof path, TMP "hdr%d.npy", _i);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  size_t n = strlen(bad_headers[_i].header);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0};
  fwrite(pre, 1, 10, f);
  fwrite(bad_headers[_i].header, 1, n, f);
  float data[2] = {1.5f, -2};
  fwrite(data, 1, sizeof data, f);
  fclose(f);
  lb_tensor t;
  lb_diag d = {0};
  int rc = lb_npy_read(path, &t, &d);
  if (!bad_headers[_i].msg) {
    ck_assert_msg(rc == 0, "%s", d.msg);
    ck_assert_float_eq(((float *)t.data)[1], -2.0f);
    lb_free(t.data);
  } else {
    snprintf(want, sizeof want, "%s: %s", path, bad_headers[_i].msg);
    ck_assert_int_eq(rc, LB_ERR_INPUT);
    ck_assert_str_eq(d.msg, want);
  }
  remove(path);
}
END_TEST

/* A .npy file of the n bytes given must fail to read with the message want. */
static void npy_refused(const char *bytes, size_t n, const char *want) {
  const char *path = TMP "magic.npy";
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fwrite(bytes, 1, n, f);
  fclose(f);
  lb_tensor t;
  lb_diag d = {0};
  ck_assert_int_eq(lb_npy_read(path, &t, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, want);
  remove(path);
}

START_TEST(bad_magic_and_version) {
  npy_refused("\x93NUMPX\x01\x00", 8, TMP "magic.npy: not a .npy file (bad magic)");
  npy_refused("\x93NUMPY\x04\x00", 8, TMP "magic.npy: unsupported .npy version 4.0");
  npy_refused("\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12,
              TMP "magic.npy: .npy header of 2147483647 bytes is too large");
}
END_TEST

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  static unsigned char buf[1 << 16];
  *n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return buf;
}

/* Our writer produces numpy's exact bytes (v1.0, 64-byte aligned header). */
START_TEST(write_matches_numpy) {
  static const struct {
    const char *fixture;
    lb_dtype dt;
  } cases[] = {{"f32_2x3.npy", LB_DTYPE_F32}, {"i8_5.npy", LB_DTYPE_I8},
               {"u8_1x5.npy", LB_DTYPE_U8},   {"bool_4.npy", LB_DTYPE_BOOL},
               {"f32_scalar.npy", LB_DTYPE_F32}, {"i64_2x2x2.npy", LB_DTYPE_I64},
               {"f32_0x3.npy", LB_DTYPE_F32}, {"f64_3.npy", LB_DTYPE_F64}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char src[512];
    snprintf(src, sizeof src, NPY "%s", cases[k].fixture);
    lb_tensor t = read_ok(src);
    ck_assert_int_eq(t.dtype, cases[k].dt);
    lb_diag d = {0};
    const char *out = TMP "w.npy";
    ck_assert_msg(lb_npy_write(out, &t, &d) == 0, "%s", d.msg);
    size_t na, nb;
    unsigned char *a = slurp(src, &na);
    unsigned char *copy = malloc(na);
    memcpy(copy, a, na);
    unsigned char *b = slurp(out, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(copy, b, na) == 0, "%s differs from numpy's file", cases[k].fixture);
    free(copy);
    lb_free(t.data);
    remove(out);
  }
}
END_TEST

static int count_tmp_files(void) {
  DIR *d = opendir(LB_BINARY_DIR);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

START_TEST(write_failures_leave_nothing) {
  float v[3] = {1, 2, 3};
  lb_tensor t = {LB_DTYPE_F32, 1, {3}, v};
  lb_diag d = {0};
  /* the target is a directory: rename fails, the temporary file is removed */
  const char *dir = TMP "adir.npy";
  mkdir(dir, 0755);
  int before = count_tmp_files();
  ck_assert_int_eq(lb_npy_write(dir, &t, &d), LB_ERR_INPUT);
  ck_assert_ptr_nonnull(strstr(d.msg, TMP "adir.npy: write failed: "));
  ck_assert_int_eq(count_tmp_files(), before);
  rmdir(dir);
  /* a missing directory */
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_npy_write(TMP "nodir/x.npy", &t, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, TMP "nodir/x.npy: cannot create: No such file or directory");
  /* sub-byte data has no .npy dtype: error before anything is created */
  uint8_t packed[2] = {0x21, 0x03};
  lb_tensor q = {LB_DTYPE_I4, 1, {3}, packed};
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_npy_write(TMP "i4.npy", &q, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, TMP "i4.npy: dtype i4 cannot be stored in a .npy file");
  struct stat st;
  ck_assert_int_ne(stat(TMP "i4.npy", &st), 0);
}
END_TEST

START_TEST(bin_round_trip) {
  int16_t v[6] = {-3, 2, 1000, -32768, 32767, 0};
  lb_tensor t = {LB_DTYPE_I16, 2, {3, 2}, v};
  lb_diag d = {0};
  ck_assert_int_eq(lb_tensor_write(TMP "v.bin", &t, &d), 0);
  lb_tensor r;
  int64_t dims[2] = {3, 2};
  ck_assert_int_eq(lb_tensor_read(TMP "v.bin", LB_DTYPE_I16, 2, dims, &r, &d), 0);
  check_shape(&r, LB_DTYPE_I16, 2, dims);
  ck_assert_int_eq(memcmp(r.data, v, sizeof v), 0);
  lb_free(r.data);
  int64_t wrong[2] = {4, 2};
  ck_assert_int_eq(lb_bin_read(TMP "v.bin", LB_DTYPE_I16, 2, wrong, &r, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, TMP "v.bin: expected 16 data bytes, got 12");
  /* sub-byte: 5 u2 values pack into 2 bytes */
  uint8_t packed[2] = {0x1b, 0x03};
  lb_tensor p = {LB_DTYPE_U2, 1, {5}, packed};
  ck_assert_int_eq(lb_bin_write(TMP "p.raw", &p, &d), 0);
  int64_t d5[1] = {5};
  ck_assert_int_eq(lb_tensor_read(TMP "p.raw", LB_DTYPE_U2, 1, d5, &r, &d), 0);
  ck_assert_int_eq(memcmp(r.data, packed, 2), 0);
  lb_free(r.data);
  lb_diag_clear(&d);
  ck_assert_int_eq(lb_tensor_read(TMP "p.txt", LB_DTYPE_U2, 1, d5, &r, &d), LB_ERR_INPUT);
  ck_assert_str_eq(d.msg, TMP "p.txt: unknown tensor file type (use .npy, .bin or .raw)");
  remove(TMP "v.bin");
  remove(TMP "p.raw");
}
END_TEST

START_TEST(npy_write_read_all_dtypes) {
  static const lb_dtype dts[] = {LB_DTYPE_F32, LB_DTYPE_F64, LB_DTYPE_I64, LB_DTYPE_I32,
                                 LB_DTYPE_I16, LB_DTYPE_I8,  LB_DTYPE_U8,  LB_DTYPE_BOOL};
  unsigned char data[64];
  for (int i = 0; i < 64; i++) data[i] = (unsigned char)(i * 37 % 2 == 0 ? i * 37 : 1);
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
    if (dts[k] == LB_DTYPE_BOOL)
      for (int i = 0; i < 64; i++) data[i] = (unsigned char)(i % 3 == 0);
    lb_tensor t = {dts[k], 1, {5}, data};
    lb_diag d = {0};
    ck_assert_int_eq(lb_npy_write(TMP "a.npy", &t, &d), 0);
    size_t n;
    unsigned char *b = slurp(TMP "a.npy", &n);
    size_t hdr = n - lb_dtype_bytes(dts[k], 5);
    ck_assert_uint_eq(hdr % 64, 0);
    char head[256];
    snprintf(head, sizeof head, "%.*s", (int)hdr - 10, (const char *)b + 10);
    ck_assert_ptr_nonnull(strstr(head, "'shape': (5,), }"));
    lb_tensor r = read_ok(TMP "a.npy");
    check_shape(&r, dts[k], 1, t.dims);
    ck_assert_int_eq(memcmp(r.data, data, lb_dtype_bytes(dts[k], 5)), 0);
    lb_free(r.data);
  }
  remove(TMP "a.npy");
}
END_TEST

int main(void) {
  const TTest *tests[] = {
    read_numpy_f32, read_numpy_dtypes, bad_magic_and_version, write_matches_numpy,
    write_failures_leave_nothing, bin_round_trip, npy_write_read_all_dtypes};
  TCase *tc;
  Suite *s = lb_test_suite("tensor_io", tests, LB_TEST_N(tests), &tc);
  tcase_add_loop_test(tc, read_bad_files, 0, LB_TEST_N(bad_files));
  tcase_add_loop_test(tc, read_bad_headers, 0, LB_TEST_N(bad_headers));
  return lb_test_run(s);
}
