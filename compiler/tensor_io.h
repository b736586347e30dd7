/* Tensor files: NumPy .npy (read v1/v2/v3, write v1.0; f32, f64, i64, i32, i16, i8, u8, bool;
 * C order, little endian) and raw little-endian .bin/.raw whose dtype and shape the caller
 * supplies. Errors name the file; writes are atomic (temp file + rename). */
#ifndef LB_TENSOR_IO_H
#define LB_TENSOR_IO_H

#include "ir.h"

/* Reads a .npy file; data is lb_malloc'd. */
int lb_npy_read(const char *path, lb_tensor *out, lb_diag *diag);
/* Writes a .npy file atomically (temporary file + rename): no partial output on failure. */
int lb_npy_write(const char *path, const lb_tensor *t, lb_diag *diag);
/* Reads raw little-endian data; the file size must equal the expected size exactly. */
int lb_bin_read(const char *path, lb_dtype dtype, int rank, const int64_t *dims, lb_tensor *out,
                lb_diag *diag);
int lb_bin_write(const char *path, const lb_tensor *t, lb_diag *diag);
/* Reads by extension: .npy, or .bin/.raw with the given dtype and shape. */
int lb_tensor_read(const char *path, lb_dtype dtype, int rank, const int64_t *dims,
                   lb_tensor *out, lb_diag *diag);
/* Writes by extension: .npy or .bin. */
int lb_tensor_write(const char *path, const lb_tensor *t, lb_diag *diag);

#endif
