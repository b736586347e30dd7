/* Tensor files: NumPy .npy (read v1/v2/v3, write v1.0) and raw little-endian .bin. Every error
 * names the file; every size is overflow-checked and must match the file exactly. Writes go to a
 * temporary file in the destination's directory and are renamed into place, so a failed write
 * leaves no partial output. Tensor data is lb_malloc'd (the caller lb_frees it). */
#include "tensor_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* .npy descr <-> dtype; only little-endian ('<') or byte-sized ('|') codes. */
static const struct {
  const char *descr;
  lb_dtype dtype;
} npy_types[] = {
    {"<f4", LB_DTYPE_F32}, {"<f8", LB_DTYPE_F64}, {"<i8", LB_DTYPE_I64}, {"<i4", LB_DTYPE_I32},
    {"<i2", LB_DTYPE_I16}, {"|i1", LB_DTYPE_I8},  {"|u1", LB_DTYPE_U8},  {"|b1", LB_DTYPE_BOOL},
};
#define N_NPY_TYPES (sizeof npy_types / sizeof npy_types[0])

#define NPY_MAX_HEADER (1u << 20)

/* ---- reading helpers -------------------------------------------------------------------- */

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n ? 0 : -1; }

static int file_size(FILE *f, uint64_t *size) {
  struct stat st;
  if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) return -1;
  *size = (uint64_t)st.st_size;
  return 0;
}

/* Product of dims and its size in bytes, both overflow-checked. */
static int tensor_bytes(const char *path, lb_dtype t, int rank, const int64_t *dims,
                        size_t *nbytes, lb_diag *diag) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0)
      return lb_diag_err(diag, LB_ERR_INPUT, "%s: negative dimension %lld", path,
                         (long long)dims[i]);
    if (dims[i] && n > INT64_MAX / dims[i])
      return lb_diag_err(diag, LB_ERR_INPUT, "%s: shape is too large", path);
    n *= dims[i];
  }
  *nbytes = lb_dtype_bytes(t, n);
  if (*nbytes == SIZE_MAX) return lb_diag_err(diag, LB_ERR_INPUT, "%s: shape is too large", path);
  return 0;
}

/* Reads nbytes of payload into a fresh buffer; the file must end right after it. */
static int read_payload(FILE *f, const char *path, uint64_t offset, size_t nbytes, void **data,
                        lb_diag *diag) {
  uint64_t size;
  if (file_size(f, &size)) return lb_diag_err(diag, LB_ERR_INPUT, "%s: not a regular file", path);
  if (size < offset || size - offset != nbytes)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: expected %zu data bytes, got %llu", path, nbytes,
                       (unsigned long long)(size < offset ? 0 : size - offset));
  *data = lb_malloc(nbytes ? nbytes : 1);
  if (!*data) return lb_diag_err(diag, LB_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, nbytes);
  if (nbytes && read_exact(f, *data, nbytes)) {
    lb_free(*data);
    *data = NULL;
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: read error: %s", path, strerror(errno));
  }
  return 0;
}

/* ---- the .npy header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct {
  const char *s, *p, *e; /* start, cursor, end */
  const char *path;
  lb_diag *diag;
} hdr;

static int hdr_err(hdr *h, const char *what) {
  return lb_diag_err(h->diag, LB_ERR_INPUT, "%s: malformed .npy header at byte %d: %s", h->path,
                     (int)(h->p - h->s), what);
}

static void hdr_ws(hdr *h) {
  while (h->p < h->e && (*h->p == ' ' || *h->p == '\t')) h->p++;
}

static int hdr_char(hdr *h, char c) {
  hdr_ws(h);
  if (h->p < h->e && *h->p == c) {
    h->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string without escapes (numpy never writes any in these fields). */
static int hdr_str(hdr *h, char *out, size_t cap) {
  hdr_ws(h);
  if (h->p >= h->e || (*h->p != '\'' && *h->p != '"')) return hdr_err(h, "expected a string");
  char q = *h->p++;
  size_t n = 0;
  while (h->p < h->e && *h->p != q) {
    if (*h->p == '\\' || n + 1 >= cap) return hdr_err(h, "unexpected string");
    out[n++] = *h->p++;
  }
  if (h->p >= h->e) return hdr_err(h, "unterminated string");
  h->p++;
  out[n] = 0;
  return 0;
}

static int hdr_shape(hdr *h, lb_tensor *t) {
  if (!hdr_char(h, '(')) return hdr_err(h, "expected '(' for the shape");
  t->rank = 0;
  for (;;) {
    if (hdr_char(h, ')')) break;
    hdr_ws(h);
    if (h->p >= h->e || *h->p < '0' || *h->p > '9') return hdr_err(h, "expected a dimension");
    int64_t v = 0;
    while (h->p < h->e && *h->p >= '0' && *h->p <= '9') {
      if (v > (INT64_MAX - 9) / 10) return hdr_err(h, "dimension too large");
      v = v * 10 + (*h->p++ - '0');
    }
    if (h->p < h->e && *h->p == 'L') h->p++; /* Python 2 longs */
    if (t->rank == LB_MAX_RANK) return hdr_err(h, "more than 8 dimensions");
    t->dims[t->rank++] = v;
    if (hdr_char(h, ')')) break;
    if (!hdr_char(h, ',')) return hdr_err(h, "expected ',' or ')' in the shape");
  }
  /* Python needs the comma in a 1-tuple: "(5)" is an int, not a shape */
  const char *close = h->p - 1;
  while (close > h->s && close[-1] == ' ') close--;
  if (t->rank == 1 && close[-1] != ',') return hdr_err(h, "a 1-D shape needs a trailing comma");
  return 0;
}

static int descr_dtype(hdr *h, const char *descr, lb_dtype *out) {
  for (size_t i = 0; i < N_NPY_TYPES; i++)
    if (strcmp(descr, npy_types[i].descr) == 0) {
      *out = npy_types[i].dtype;
      return 0;
    }
  if (strchr(descr, 'O'))
    return lb_diag_err(h->diag, LB_ERR_INPUT, "%s: object arrays ('%s') are not supported",
                       h->path, descr);
  if (descr[0] == '>')
    return lb_diag_err(h->diag, LB_ERR_INPUT,
                       "%s: big-endian data ('%s') is not supported; save it as '<%s'", h->path,
                       descr, descr + 1);
  return lb_diag_err(h->diag, LB_ERR_INPUT, "%s: unsupported dtype '%s'", h->path, descr);
}

static int hdr_entry(hdr *h, unsigned *seen, lb_tensor *t) {
  char key[32], descr[32];
  LB_TRY(hdr_str(h, key, sizeof key));
  if (!hdr_char(h, ':')) return hdr_err(h, "expected ':'");
  int k = strcmp(key, "descr") == 0 ? 0 : strcmp(key, "fortran_order") == 0 ? 1
        : strcmp(key, "shape") == 0 ? 2 : -1;
  if (k < 0) return hdr_err(h, "unknown key");
  if (*seen & (1u << k)) return hdr_err(h, "repeated key");
  *seen |= 1u << k;
  if (k == 0) {
    if (hdr_char(h, '['))
      return lb_diag_err(h->diag, LB_ERR_INPUT, "%s: structured dtypes are not supported",
                         h->path);
    LB_TRY(hdr_str(h, descr, sizeof descr));
    return descr_dtype(h, descr, &t->dtype);
  }
  if (k == 2) return hdr_shape(h, t);
  hdr_ws(h);
  if ((size_t)(h->e - h->p) >= 5 && memcmp(h->p, "False", 5) == 0) {
    h->p += 5;
    return 0;
  }
  if ((size_t)(h->e - h->p) >= 4 && memcmp(h->p, "True", 4) == 0)
    return lb_diag_err(h->diag, LB_ERR_INPUT,
                       "%s: fortran_order arrays are not supported; save a C-ordered array",
                       h->path);
  return hdr_err(h, "fortran_order must be True or False");
}

static int parse_header(const char *text, size_t n, const char *path, lb_tensor *t,
                        lb_diag *diag) {
  hdr h = {text, text, text + n, path, diag};
  if (n == 0 || text[n - 1] != '\n') return hdr_err(&h, "header must end with a newline");
  h.e--;
  unsigned seen = 0;
  if (!hdr_char(&h, '{')) return hdr_err(&h, "expected '{'");
  while (!hdr_char(&h, '}')) {
    LB_TRY(hdr_entry(&h, &seen, t));
    if (hdr_char(&h, '}')) break;
    if (!hdr_char(&h, ',')) return hdr_err(&h, "expected ',' or '}'");
  }
  if (seen != 7) return hdr_err(&h, "needs the keys descr, fortran_order and shape");
  hdr_ws(&h);
  if (h.p != h.e) return hdr_err(&h, "text after the header dict");
  return 0;
}

/* magic, version, header length, header; leaves f at the payload. */
static int read_npy_header(FILE *f, const char *path, lb_tensor *t, uint64_t *offset,
                           lb_diag *diag) {
  unsigned char pre[12];
  if (read_exact(f, pre, 8) || memcmp(pre, "\x93NUMPY", 6) != 0)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: not a .npy file (bad magic)", path);
  int major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: unsupported .npy version %d.%d", path, major,
                       minor);
  int lsize = major == 1 ? 2 : 4;
  if (read_exact(f, pre + 8, (size_t)lsize))
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: truncated .npy header", path);
  uint32_t hlen = pre[8] | (uint32_t)pre[9] << 8;
  if (lsize == 4) hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  if (hlen > NPY_MAX_HEADER)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: .npy header of %u bytes is too large", path, hlen);
  char *text = lb_malloc(hlen + 1);
  if (!text) return lb_diag_err(diag, LB_ERR_NOMEM, "%s: out of memory", path);
  int rc = 0;
  if (read_exact(f, text, hlen))
    rc = lb_diag_err(diag, LB_ERR_INPUT, "%s: truncated .npy header", path);
  else
    rc = parse_header(text, hlen, path, t, diag);
  lb_free(text);
  *offset = 8 + (uint64_t)lsize + hlen;
  return rc;
}

int lb_npy_read(const char *path, lb_tensor *out, lb_diag *diag) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
  lb_tensor t;
  memset(&t, 0, sizeof t);
  uint64_t offset = 0;
  size_t nbytes = 0;
  int rc = read_npy_header(f, path, &t, &offset, diag);
  if (!rc) rc = tensor_bytes(path, t.dtype, t.rank, t.dims, &nbytes, diag);
  if (!rc) rc = read_payload(f, path, offset, nbytes, &t.data, diag);
  fclose(f);
  if (!rc) *out = t;
  return rc;
}

int lb_bin_read(const char *path, lb_dtype dtype, int rank, const int64_t *dims, lb_tensor *out,
                lb_diag *diag) {
  memset(out, 0, sizeof *out);
  if (rank < 0 || rank > LB_MAX_RANK)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: rank %d is out of range", path, rank);
  size_t nbytes;
  LB_TRY(tensor_bytes(path, dtype, rank, dims, &nbytes, diag));
  FILE *f = fopen(path, "rb");
  if (!f) return lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
  lb_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.rank = rank;
  for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
  int rc = read_payload(f, path, 0, nbytes, &t.data, diag);
  fclose(f);
  if (!rc) *out = t;
  return rc;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef int (*write_fn)(FILE *f, const lb_tensor *t, size_t nbytes, const void *ctx);

/* Writes through fn into a temporary file next to path, then renames it over path. */
static int write_atomic(const char *path, const lb_tensor *t, size_t nbytes, write_fn fn,
                        const void *ctx, lb_diag *diag) {
  size_t n = strlen(path);
  char *tmp = lb_malloc(n + 16);
  if (!tmp) return lb_diag_err(diag, LB_ERR_NOMEM, "%s: out of memory", path);
  snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int rc = lb_diag_err(diag, LB_ERR_INPUT, "%s: cannot create: %s", path, strerror(errno));
    lb_free(tmp);
    return rc;
  }
  mode_t mask = umask(0);
  umask(mask);
  int ok = fchmod(fd, 0666 & ~mask) == 0;
  FILE *f = fdopen(fd, "wb");
  if (!f) close(fd);
  ok = ok && f && fn(f, t, nbytes, ctx) == 0;
  if (f && fclose(f)) ok = 0;
  int err = errno;
  if (ok && rename(tmp, path) == 0) {
    lb_free(tmp);
    return 0;
  }
  err = errno ? errno : err;
  unlink(tmp);
  lb_free(tmp);
  return lb_diag_err(diag, LB_ERR_INPUT, "%s: write failed: %s", path, strerror(err));
}

static int put_raw(FILE *f, const lb_tensor *t, size_t nbytes, const void *ctx) {
  (void)ctx;
  return nbytes && fwrite(t->data, 1, nbytes, f) != nbytes ? -1 : 0;
}

/* Header text for a v1.0 file, padded with spaces so magic+header is a multiple of 64. */
static int npy_header_text(const lb_tensor *t, const char *descr, char *out, size_t cap,
                           size_t *len) {
  int n = snprintf(out, cap, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < t->rank; i++)
    n += snprintf(out + n, cap - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
  n += snprintf(out + n, cap - (size_t)n, "%s), }", t->rank == 1 ? "," : "");
  size_t total = ((10 + (size_t)n + 1 + 63) / 64) * 64;
  if (total - 10 >= cap || total - 10 > 65535) return -1;
  memset(out + n, ' ', total - 10 - (size_t)n - 1);
  out[total - 10 - 1] = '\n';
  *len = total - 10;
  return 0;
}

static int put_npy(FILE *f, const lb_tensor *t, size_t nbytes, const void *ctx) {
  char text[512];
  size_t len;
  if (npy_header_text(t, ctx, text, sizeof text, &len)) return -1;
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                           (unsigned char)(len >> 8)};
  if (fwrite(pre, 1, 10, f) != 10 || fwrite(text, 1, len, f) != len) return -1;
  return put_raw(f, t, nbytes, NULL);
}

int lb_npy_write(const char *path, const lb_tensor *t, lb_diag *diag) {
  const char *descr = NULL;
  for (size_t i = 0; i < N_NPY_TYPES; i++)
    if (npy_types[i].dtype == t->dtype) descr = npy_types[i].descr;
  if (!descr)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: dtype %s cannot be stored in a .npy file", path,
                       lb_dtype_name(t->dtype));
  if (t->rank < 0 || t->rank > LB_MAX_RANK)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: rank %d is out of range", path, t->rank);
  size_t nbytes;
  LB_TRY(tensor_bytes(path, t->dtype, t->rank, t->dims, &nbytes, diag));
  return write_atomic(path, t, nbytes, put_npy, descr, diag);
}

int lb_bin_write(const char *path, const lb_tensor *t, lb_diag *diag) {
  if (t->rank < 0 || t->rank > LB_MAX_RANK)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s: rank %d is out of range", path, t->rank);
  size_t nbytes;
  LB_TRY(tensor_bytes(path, t->dtype, t->rank, t->dims, &nbytes, diag));
  return write_atomic(path, t, nbytes, put_raw, NULL, diag);
}

/* ---- by extension ----------------------------------------------------------------------- */

typedef enum { EXT_NPY, EXT_BIN, EXT_OTHER } file_ext;

static file_ext ext_of(const char *path) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash)) return EXT_OTHER;
  if (strcmp(dot, ".npy") == 0) return EXT_NPY;
  if (strcmp(dot, ".bin") == 0 || strcmp(dot, ".raw") == 0) return EXT_BIN;
  return EXT_OTHER;
}

int lb_tensor_read(const char *path, lb_dtype dtype, int rank, const int64_t *dims,
                   lb_tensor *out, lb_diag *diag) {
  switch (ext_of(path)) {
  case EXT_NPY: return lb_npy_read(path, out, diag);
  case EXT_BIN: return lb_bin_read(path, dtype, rank, dims, out, diag);
  case EXT_OTHER: break;
  }
  memset(out, 0, sizeof *out);
  return lb_diag_err(diag, LB_ERR_INPUT, "%s: unknown tensor file type (use .npy, .bin or .raw)",
                     path);
}

int lb_tensor_write(const char *path, const lb_tensor *t, lb_diag *diag) {
  switch (ext_of(path)) {
  case EXT_NPY: return lb_npy_write(path, t, diag);
  case EXT_BIN: return lb_bin_write(path, t, diag);
  case EXT_OTHER: break;
  }
  return lb_diag_err(diag, LB_ERR_INPUT, "%s: unknown tensor file type (use .npy, .bin or .raw)",
                     path);
}
