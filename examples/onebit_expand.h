/* onebit_expand: a keras_onebit packed .tflite file (one bit per weight) back into
 * the plain float or int8 model it was packed from, byte for byte, before the
 * interpreter is built. C99 and the C library only; no allocation.
 *
 *   size_t n = onebit_expanded_size(packed, packed_size, err, sizeof err);
 *   if (n == 0) { report(err); }                  // not a packed file, or tampered
 *   uint8_t *plain = malloc(n);                   // e.g. a direct ByteBuffer
 *   if (onebit_expand(packed, packed_size, plain, n, err, sizeof err) != 0) ...
 *   // LiteRT: TfLiteModelCreate(plain, n) / new Interpreter(ByteBuffer)
 *
 * Errors are one line in `err` (truncated to err_size, always terminated). The
 * format is docs/FORMAT.md's "expansion record"; keras_onebit.export.expand is
 * the same function in Python and gives the same bytes. */
#ifndef ONEBIT_EXPAND_H
#define ONEBIT_EXPAND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the plain model, or 0 (with `err` set) when `packed` is not a packed
 * file of keras_onebit with an expansion record, is truncated or tampered, or is
 * of a newer format version. Checks everything onebit_expand reads except the
 * skeleton stream. */
size_t onebit_expanded_size(const uint8_t *packed, size_t packed_size, char *err,
                            size_t err_size);

/* Writes the plain model into out[0 .. out_size), out_size being what
 * onebit_expanded_size returned. Returns 0, or -1 with `err` set (nothing
 * useful is left in `out` then). */
int onebit_expand(const uint8_t *packed, size_t packed_size, uint8_t *out, size_t out_size,
                  char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif /* ONEBIT_EXPAND_H */
