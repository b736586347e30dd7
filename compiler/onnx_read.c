/* ONNX bytes: reading files, unpacking protobuf with the lb allocator after a nesting-depth check
 * (protobuf-c recurses without a limit), and decoding TensorProtos in every storage form.
 * Invariant: nothing here trusts a count or size from the file before checking it against the
 * bytes actually present and against the LB_ONNX_MAX_* limits. */
#include "onnx_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data is copied as little endian");

/* ---- allocator -------------------------------------------------------------------------- */

/* allocator_data points at an int set to 1 when an allocation fails, so a failed unpack can be
 * told apart from a corrupt file. */
static void *pb_alloc(void *st, size_t n) {
  void *p = lb_malloc(n);
  if (!p && st) *(int *)st = 1;
  return p;
}

static void pb_free(void *st, void *p) {
  (void)st;
  lb_free(p);
}

static ProtobufCAllocator free_alloc = {pb_alloc, pb_free, NULL};

void lb_onnx_free_model(Onnx__ModelProto *m) {
  if (m) onnx__model_proto__free_unpacked(m, &free_alloc);
}

/* ---- nesting depth ---------------------------------------------------------------------- */

static int get_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*i >= len) return -1;
    uint8_t b = p[(*i)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

/* Walks the wire format following only fields the descriptor says are messages. Returns 1 if
 * nesting exceeds LB_ONNX_MAX_DEPTH; malformed bytes return 0 and are left to the unpacker. */
static int too_deep(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d,
                    int depth) {
  if (depth > LB_ONNX_MAX_DEPTH) return 1;
  size_t i = 0;
  while (i < len) {
    uint64_t key, l;
    if (get_varint(p, len, &i, &key)) return 0;
    switch (key & 7) {
    case 0:
      if (get_varint(p, len, &i, &l)) return 0;
      break;
    case 1:
      if (len - i < 8) return 0;
      i += 8;
      break;
    case 5:
      if (len - i < 4) return 0;
      i += 4;
      break;
    case 2: {
      if (get_varint(p, len, &i, &l) || l > len - i) return 0;
      uint64_t num = key >> 3;
      const ProtobufCFieldDescriptor *f =
          num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          too_deep(p + i, (size_t)l, f->descriptor, depth + 1))
        return 1;
      i += (size_t)l;
      break;
    }
    default:
      return 0;
    }
  }
  return 0;
}

static int pre_unpack(const void *buf, size_t len, const ProtobufCMessageDescriptor *d,
                      lb_diag *diag) {
  if (len > LB_ONNX_MAX_FILE)
    return lb_diag_err(diag, LB_ERR_INPUT, "file too large (%zu bytes; protobuf allows 2 GiB)",
                       len);
  if (too_deep(buf, len, d, 0))
    return lb_diag_err(diag, LB_ERR_INPUT, "messages nested deeper than %d levels",
                       LB_ONNX_MAX_DEPTH);
  return 0;
}

int lb_onnx_unpack_model(const void *buf, size_t len, Onnx__ModelProto **out, lb_diag *diag) {
  LB_TRY(pre_unpack(buf, len, &onnx__model_proto__descriptor, diag));
  int oom = 0;
  ProtobufCAllocator a = {pb_alloc, pb_free, &oom};
  *out = onnx__model_proto__unpack(&a, len, buf);
  if (*out) return 0;
  if (oom) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory while parsing the model");
  return lb_diag_err(diag, LB_ERR_INPUT,
                     "not a valid ONNX model: protobuf parse failed (truncated or corrupt file)");
}

/* ---- files ------------------------------------------------------------------------------ */

int lb_onnx_read_file(const char *path, void **buf, size_t *len, lb_diag *diag) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return lb_diag_err(diag, LB_ERR_INPUT, "%s", strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = lb_diag_err(diag, LB_ERR_INPUT, "not a regular file");
    goto done;
  }
  if ((uint64_t)st.st_size > LB_ONNX_MAX_FILE) {
    rc = lb_diag_err(diag, LB_ERR_INPUT, "file too large (%lld bytes; protobuf allows 2 GiB)",
                     (long long)st.st_size);
    goto done;
  }
  size_t n = (size_t)st.st_size;
  *buf = lb_malloc(n);
  if (!*buf) {
    rc = lb_diag_err(diag, LB_ERR_NOMEM, "out of memory reading %zu bytes", n);
    goto done;
  }
  if (n && fread(*buf, 1, n, f) != n) {
    rc = lb_diag_err(diag, LB_ERR_INPUT, "read error");
    lb_free(*buf);
    *buf = NULL;
    goto done;
  }
  *len = n;
done:
  fclose(f);
  return rc;
}

/* ---- dtypes and tensors ----------------------------------------------------------------- */

static const char *const onnx_type_names[] = {
    "undefined", "float",    "uint8",     "int8",         "uint16",     "int16",
    "int32",     "int64",    "string",    "bool",         "float16",    "double",
    "uint32",    "uint64",   "complex64", "complex128",   "bfloat16",   "float8e4m3fn",
    "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "uint4", "int4", "float4e2m1"};

int lb_onnx_dtype(int32_t t, lb_dtype *out, lb_diag *diag) {
  switch (t) {
  case 1: *out = LB_DTYPE_F32; return 0;
  case 2: *out = LB_DTYPE_U8; return 0;
  case 3: *out = LB_DTYPE_I8; return 0;
  case 5: *out = LB_DTYPE_I16; return 0;
  case 6: *out = LB_DTYPE_I32; return 0;
  case 7: *out = LB_DTYPE_I64; return 0;
  case 9: *out = LB_DTYPE_BOOL; return 0;
  case 11: *out = LB_DTYPE_F64; return 0;
  default: break;
  }
  if (t >= 0 && (size_t)t < sizeof onnx_type_names / sizeof onnx_type_names[0])
    return lb_diag_err(diag, LB_ERR_INPUT,
                       "unsupported data type %s (%d); supported: float, double, int64, int32, "
                       "int16, int8, uint8, bool",
                       onnx_type_names[t], (int)t);
  return lb_diag_err(diag, LB_ERR_INPUT, "unknown data type %d", (int)t);
}

int64_t lb_onnx_numel(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0 || dims[i] > LB_ONNX_MAX_NUMEL) return -1;
    if (dims[i] && n > LB_ONNX_MAX_NUMEL / dims[i]) return -1;
    n *= dims[i];
  }
  return n;
}

/* Copies int32_data into narrower integer types, rejecting out-of-range values. */
static int narrow_ints(const int32_t *src, int64_t n, lb_dtype dt, void *dst, lb_diag *diag) {
  int32_t lo = dt == LB_DTYPE_I8 ? -128 : dt == LB_DTYPE_I16 ? -32768 : 0;
  int32_t hi = dt == LB_DTYPE_I8 ? 127 : dt == LB_DTYPE_I16 ? 32767 : dt == LB_DTYPE_U8 ? 255 : 1;
  for (int64_t i = 0; i < n; i++) {
    if (src[i] < lo || src[i] > hi)
      return lb_diag_err(diag, LB_ERR_INPUT, "int32_data[%lld] = %d out of range for %s",
                         (long long)i, (int)src[i], lb_dtype_name(dt));
    if (dt == LB_DTYPE_I16)
      ((int16_t *)dst)[i] = (int16_t)src[i];
    else
      ((uint8_t *)dst)[i] = (uint8_t)src[i];
  }
  return 0;
}

/* Picks the typed field that holds this dtype: pointer, count, element size. */
static const void *typed_field(const Onnx__TensorProto *t, lb_dtype dt, size_t *count,
                               const char **field) {
  switch (dt) {
  case LB_DTYPE_F32: *count = t->n_float_data; *field = "float_data"; return t->float_data;
  case LB_DTYPE_F64: *count = t->n_double_data; *field = "double_data"; return t->double_data;
  case LB_DTYPE_I64: *count = t->n_int64_data; *field = "int64_data"; return t->int64_data;
  default: *count = t->n_int32_data; *field = "int32_data"; return t->int32_data;
  }
}

/* Checks that the storage field holds exactly numel elements (nbytes of raw data). Done before
 * the destination is allocated, so a tiny file cannot make us allocate gigabytes. */
static int check_count(const Onnx__TensorProto *t, lb_dtype dt, int64_t numel, size_t nbytes,
                       lb_diag *diag) {
  if (t->has_raw_data) {
    if (t->raw_data.len != nbytes)
      return lb_diag_err(diag, LB_ERR_INPUT, "raw_data has %zu bytes, expected %zu",
                         t->raw_data.len, nbytes);
    return 0;
  }
  size_t count;
  const char *field;
  typed_field(t, dt, &count, &field);
  if (count != (uint64_t)numel)
    return lb_diag_err(diag, LB_ERR_INPUT, "%s has %zu elements, expected %lld%s", field, count,
                       (long long)numel, count == 0 ? " (tensor has no data)" : "");
  return 0;
}

/* Copies the (already counted) data into dst. */
static int decode_data(const Onnx__TensorProto *t, lb_dtype dt, int64_t numel, size_t nbytes,
                       void *dst, lb_diag *diag) {
  if (t->has_raw_data) {
    if (nbytes) memcpy(dst, t->raw_data.data, nbytes);
    return 0;
  }
  size_t count;
  const char *field;
  const void *src = typed_field(t, dt, &count, &field);
  if (dt == LB_DTYPE_I8 || dt == LB_DTYPE_U8 || dt == LB_DTYPE_I16 || dt == LB_DTYPE_BOOL)
    return narrow_ints(src, numel, dt, dst, diag);
  if (nbytes) memcpy(dst, src, nbytes);
  return 0;
}

static int check_storage(const Onnx__TensorProto *t, lb_diag *diag) {
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return lb_diag_err(diag, LB_ERR_INPUT, "external data is not supported");
  if (t->n_external_data)
    return lb_diag_err(diag, LB_ERR_INPUT, "external data is not supported");
  if (t->segment) return lb_diag_err(diag, LB_ERR_INPUT, "segmented tensors are not supported");
  if (!t->has_data_type) return lb_diag_err(diag, LB_ERR_INPUT, "tensor has no data_type");
  if (t->n_dims > LB_MAX_RANK)
    return lb_diag_err(diag, LB_ERR_INPUT, "rank %zu exceeds the maximum %d", t->n_dims,
                       LB_MAX_RANK);
  return 0;
}

int lb_onnx_decode_tensor(const Onnx__TensorProto *t, lb_tensor *out, size_t *nbytes,
                          lb_diag *diag) {
  memset(out, 0, sizeof *out);
  LB_TRY(check_storage(t, diag));
  LB_TRY(lb_onnx_dtype(t->data_type, &out->dtype, diag));
  out->rank = (int)t->n_dims;
  for (int i = 0; i < out->rank; i++) {
    if (t->dims[i] < 0)
      return lb_diag_err(diag, LB_ERR_INPUT, "dims[%d] = %lld is negative", i,
                         (long long)t->dims[i]);
    out->dims[i] = t->dims[i];
  }
  int64_t numel = lb_onnx_numel(out->rank, out->dims);
  size_t nb = numel < 0 ? SIZE_MAX : lb_dtype_bytes(out->dtype, numel);
  if (numel < 0 || nb > LB_ONNX_MAX_BYTES)
    return lb_diag_err(diag, LB_ERR_INPUT, "tensor too large (limit %llu bytes)",
                       (unsigned long long)LB_ONNX_MAX_BYTES);
  LB_TRY(check_count(t, out->dtype, numel, nb, diag));
  out->data = lb_malloc(nb);
  if (!out->data) return lb_diag_err(diag, LB_ERR_NOMEM, "out of memory (%zu bytes)", nb);
  int rc = decode_data(t, out->dtype, numel, nb, out->data, diag);
  if (rc) {
    lb_free(out->data);
    out->data = NULL;
    return rc;
  }
  *nbytes = nb;
  return 0;
}

/* Names come from the file and may hold control characters; the message stays one line. */
void lb_onnx_one_line(lb_diag *diag) {
  for (char *p = diag->msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* ---- lb_onnx_load_tensor ------------------------------------------------------------------ */

int lb_onnx_load_tensor(const char *path, lb_tensor *out, lb_diag *diag) {
  memset(out, 0, sizeof *out);
  void *buf;
  size_t len, nbytes;
  int rc = lb_onnx_read_file(path, &buf, &len, diag);
  if (rc) {
    lb_diag_prefix(diag, "%s", path);
    return rc;
  }
  rc = pre_unpack(buf, len, &onnx__tensor_proto__descriptor, diag);
  Onnx__TensorProto *t = NULL;
  if (!rc) {
    int oom = 0;
    ProtobufCAllocator a = {pb_alloc, pb_free, &oom};
    t = onnx__tensor_proto__unpack(&a, len, buf);
    if (!t)
      rc = oom ? lb_diag_err(diag, LB_ERR_NOMEM, "out of memory while parsing")
               : lb_diag_err(diag, LB_ERR_INPUT,
                             "not a valid TensorProto: protobuf parse failed (truncated or "
                             "corrupt file)");
  }
  if (!rc) rc = lb_onnx_decode_tensor(t, out, &nbytes, diag);
  if (t) onnx__tensor_proto__free_unpacked(t, &free_alloc);
  lb_free(buf);
  if (rc) {
    lb_diag_prefix(diag, "%s", path);
    lb_onnx_one_line(diag);
  }
  return rc;
}
