/* onebit_expand.c: see onebit_expand.h. Reads just enough of the flatbuffer to
 * find the metadata buffer "onebit_expand" and the buffers it names; every
 * offset and size is checked against the file before it is used. */
#include "onebit_expand.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HEADER_BYTES 32u
#define ENTRY_BYTES 40u
#define RECORD_VERSION 1u
#define MAX_PLAIN_BYTES ((uint64_t)2 << 30)

typedef struct {
  const uint8_t *data;
  size_t size;
} Bytes;

typedef struct {
  uint64_t hole, count;
  uint32_t channels, bits, scales;
  uint8_t dtype, layout;
  float magnitude;
} Filter;

typedef struct {
  Bytes file, record, stream;
  uint64_t plain_size, skeleton_size;
  uint32_t filter_count;
} Packed;

static void fail(char *err, size_t err_size, const char *format, ...) {
  va_list args;
  if (err == NULL || err_size == 0) return;
  va_start(args, format);
  vsnprintf(err, err_size, format, args);
  va_end(args);
}

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/* ------------------------------------------------------------ flatbuffer reading */

/* 1 and *value when b[pos .. pos+n) lies inside b. */
static int read_le(Bytes b, uint64_t pos, int n, uint64_t *value) {
  if (pos > b.size || b.size - pos < (uint64_t)n) return 0;
  *value = le(b.data + pos, n);
  return 1;
}

/* The position of field `index` of the table at `table`, 0 when absent or bad. */
static uint64_t field(Bytes b, uint64_t table, int index) {
  uint64_t back, vtable, vsize, offset;
  if (!read_le(b, table, 4, &back)) return 0;
  int64_t signed_back = (int32_t)(uint32_t)back;
  if ((int64_t)table - signed_back < 0) return 0;
  vtable = (uint64_t)((int64_t)table - signed_back);
  if (!read_le(b, vtable, 2, &vsize) || 4u + 2u * (uint64_t)index + 2u > vsize) return 0;
  if (!read_le(b, vtable + 4u + 2u * (uint64_t)index, 2, &offset) || offset == 0) return 0;
  return table + offset;
}

/* The vector a field points at: its first element's position and length. */
static int vector(Bytes b, uint64_t at, uint64_t element_bytes, uint64_t *start,
                  uint64_t *length) {
  uint64_t offset;
  if (at == 0 || !read_le(b, at, 4, &offset) || !read_le(b, at + offset, 4, length)) return 0;
  *start = at + offset + 4u;
  return *start <= b.size && *length <= (b.size - *start) / element_bytes;
}

/* The table at element `i` of a vector of tables starting at `start`. */
static uint64_t element_table(Bytes b, uint64_t start, uint64_t i) {
  uint64_t offset, at = start + 4u * i;
  return read_le(b, at, 4, &offset) ? at + offset : 0;
}

/* Buffer `index` of the model's buffers (0 bytes when it holds no data). */
static int buffer(Bytes b, uint64_t root, uint64_t index, Bytes *out) {
  uint64_t start, length, data_start, data_length, table;
  if (!vector(b, field(b, root, 4), 4, &start, &length) || index >= length) return 0;
  table = element_table(b, start, index);
  out->data = b.data;
  out->size = 0;
  if (table == 0) return 0;
  if (field(b, table, 0) == 0) return 1;
  if (!vector(b, field(b, table, 0), 1, &data_start, &data_length)) return 0;
  out->data = b.data + data_start;
  out->size = (size_t)data_length;
  return 1;
}

/* The expansion record: the buffer of the metadata entry named "onebit_expand". */
static int find_record(Bytes b, Bytes *record, char *err, size_t err_size) {
  static const char name[] = "onebit_expand";
  uint64_t root, start, length, name_start, name_length, index;
  if (b.size < 8 || memcmp(b.data + 4, "TFL3", 4) != 0) {
    fail(err, err_size, "not a .tflite file (%zu bytes, no TFL3 identifier)", b.size);
    return 0;
  }
  if (!read_le(b, 0, 4, &root) || root >= b.size) {
    fail(err, err_size, "truncated .tflite file: its root table lies past its end");
    return 0;
  }
  if (field(b, root, 6) != 0 && !vector(b, field(b, root, 6), 4, &start, &length)) {
    fail(err, err_size, "truncated or corrupt .tflite file: its metadata list");
    return 0;
  }
  for (uint64_t i = 0; field(b, root, 6) != 0 && i < length; ++i) {
    uint64_t table = element_table(b, start, i);
    if (table == 0 || !vector(b, field(b, table, 0), 1, &name_start, &name_length)) continue;
    if (name_length != sizeof name - 1 || memcmp(b.data + name_start, name, name_length) != 0)
      continue;
    if (!read_le(b, field(b, table, 1), 4, &index) || !buffer(b, root, index, record)) {
      fail(err, err_size, "tampered packed file: its expansion record points past the buffers");
      return 0;
    }
    return 1;
  }
  fail(err, err_size,
       "not a packed file of keras_onebit with an expansion record: only the packed and "
       "packed_int8 formats expand");
  return 0;
}

/* ------------------------------------------------------------ the record */

static int read_header(Bytes file, Packed *p, char *err, size_t err_size) {
  uint64_t version, stream_size;
  if (!find_record(file, &p->record, err, err_size)) return 0;
  if (p->record.size < HEADER_BYTES || memcmp(p->record.data, "OBXP", 4) != 0) {
    fail(err, err_size, "tampered packed file: its expansion record has no OBXP header");
    return 0;
  }
  version = le(p->record.data + 4, 4);
  if (version > RECORD_VERSION) {
    fail(err, err_size, "a packed file of format v%llu (this expander reads format v%u): "
         "upgrade it", (unsigned long long)version, RECORD_VERSION);
    return 0;
  }
  p->plain_size = le(p->record.data + 8, 8);
  p->skeleton_size = le(p->record.data + 16, 8);
  p->filter_count = (uint32_t)le(p->record.data + 24, 4);
  stream_size = le(p->record.data + 28, 4);
  if (version != RECORD_VERSION || p->plain_size > MAX_PLAIN_BYTES ||
      p->skeleton_size > p->plain_size ||
      HEADER_BYTES + (uint64_t)p->filter_count * ENTRY_BYTES + stream_size > p->record.size) {
    fail(err, err_size, "tampered packed file: an expansion record of %zu bytes declares %u "
         "filters, a %llu-byte stream and a %llu-byte model", p->record.size, p->filter_count,
         (unsigned long long)stream_size, (unsigned long long)p->plain_size);
    return 0;
  }
  p->file = file;
  p->stream.data = p->record.data + HEADER_BYTES + (size_t)p->filter_count * ENTRY_BYTES;
  p->stream.size = (size_t)stream_size;
  return 1;
}

static uint64_t item_bytes(uint8_t dtype) { return dtype == 0 ? 4u : dtype == 1 ? 1u : 0u; }

static Filter filter_at(const Packed *p, uint32_t i) {
  const uint8_t *e = p->record.data + HEADER_BYTES + (size_t)i * ENTRY_BYTES;
  Filter f;
  uint32_t magnitude_bits = (uint32_t)le(e + 32, 4);
  f.hole = le(e, 8);
  f.count = le(e + 8, 8);
  f.channels = (uint32_t)le(e + 16, 4);
  f.dtype = e[20];
  f.layout = e[21];
  f.bits = (uint32_t)le(e + 24, 4);
  f.scales = (uint32_t)le(e + 28, 4);
  memcpy(&f.magnitude, &magnitude_bits, 4);
  return f;
}

/* Checks filter i against the model and the filters before it (`end`, `total`). */
static int check_filter(const Packed *p, uint32_t i, uint64_t *end, uint64_t *total, char *err,
                        size_t err_size) {
  Filter f = filter_at(p, i);
  uint64_t root = le(p->file.data, 4), size = f.count * item_bytes(f.dtype);
  Bytes bits, scales;
  const char *problem = NULL;
  if (item_bytes(f.dtype) == 0 || f.layout > 1)
    problem = "an unknown dtype or layout";
  else if (f.count == 0 || f.channels == 0 || f.count % f.channels != 0)
    problem = "a weight count its channels do not divide";
  else if (f.hole < *end || f.hole > p->plain_size || size > p->plain_size - f.hole)
    problem = "bytes outside the model or over the filter before it";
  else if (!buffer(p->file, root, f.bits, &bits) || f.bits == 0 ||
           bits.size != (f.count + 7u) / 8u)
    problem = "sign bits of another size";
  else if (f.scales != 0 && (!buffer(p->file, root, f.scales, &scales) ||
                             scales.size != 4u * (uint64_t)f.channels))
    problem = "scales of another size";
  else if (!(f.magnitude == f.magnitude) || f.magnitude - f.magnitude != 0.0f)
    problem = "a magnitude that is not finite";
  else if (f.dtype == 1 && (f.scales != 0 || !(f.magnitude >= 0.0f && f.magnitude <= 127.0f) ||
                            f.magnitude != (float)(int)f.magnitude))
    problem = "an int8 magnitude other than one integer in 0..127";
  if (problem != NULL) {
    fail(err, err_size, "tampered packed file: filter %u of its expansion record has %s", i,
         problem);
    return 0;
  }
  *end = f.hole + size;
  *total += size;
  return 1;
}

static int read_packed(const uint8_t *data, size_t size, Packed *p, char *err, size_t err_size) {
  Bytes file = {data, size};
  uint64_t end = 0, total;
  if (data == NULL) {
    fail(err, err_size, "no packed file given");
    return 0;
  }
  if (!read_header(file, p, err, err_size)) return 0;
  total = p->skeleton_size;
  for (uint32_t i = 0; i < p->filter_count; ++i)
    if (!check_filter(p, i, &end, &total, err, err_size)) return 0;
  if (total != p->plain_size) {
    fail(err, err_size, "tampered packed file: its expansion record fills %llu of %llu bytes",
         (unsigned long long)total, (unsigned long long)p->plain_size);
    return 0;
  }
  return 1;
}

/* ------------------------------------------------------------ writing */

static int read_varint(Bytes s, size_t *pos, uint64_t *value) {
  *value = 0;
  for (int k = 0; k < 5; ++k) {
    if (*pos >= s.size) return 0;
    uint8_t byte = s.data[(*pos)++];
    *value |= (uint64_t)(byte & 0x7Fu) << (7 * k);
    if (!(byte & 0x80u)) return *value <= 0xFFFFFFFFu;
  }
  return 0;
}

static float float_at(const uint8_t *p) {
  uint32_t word = (uint32_t)le(p, 4);
  float v;
  memcpy(&v, &word, 4);
  return v;
}

static void put_float(uint8_t *p, float v) {
  uint32_t word;
  memcpy(&word, &v, 4);
  for (int b = 0; b < 4; ++b) p[b] = (uint8_t)(word >> (8 * b));
}

/* count float32 products x * w[k] (little-endian): an int8 bias's scales. */
static void write_products(const uint8_t *x, const uint8_t *w, uint64_t count, uint8_t *out) {
  float scale = float_at(x);
  for (uint64_t k = 0; k < count; ++k) put_float(out + 4u * k, scale * float_at(w + 4u * k));
}

/* Decodes the skeleton stream (lz.py: literals, copies, references to bytes of
 * the packed file, products of its float32 scales) into out[0 .. skeleton_size). */
static int decode_skeleton(const Packed *p, uint8_t *out, char *err, size_t err_size) {
  size_t pos = 0;
  uint64_t done = 0, n, distance, offset, factors;
  while (pos < p->stream.size) {
    uint8_t tag = p->stream.data[pos++];
    if (!read_varint(p->stream, &pos, &n) || n == 0 || n > p->skeleton_size - done) break;
    if (tag == 0) {
      if (n > p->stream.size - pos) break;
      memcpy(out + done, p->stream.data + pos, (size_t)n);
      pos += (size_t)n;
    } else if (tag == 1) {
      if (!read_varint(p->stream, &pos, &distance) || distance == 0 || distance > done) break;
      for (uint64_t k = 0; k < n; ++k) out[done + k] = out[done + k - distance];
    } else if (tag == 2) {
      if (!read_varint(p->stream, &pos, &offset) || offset > p->file.size ||
          n > p->file.size - offset)
        break;
      memcpy(out + done, p->file.data + offset, (size_t)n);
    } else if (tag == 3) {
      if (!read_varint(p->stream, &pos, &offset) || !read_varint(p->stream, &pos, &factors) ||
          n % 4 != 0 || offset > p->file.size || p->file.size - offset < 4 ||
          factors > p->file.size || n > p->file.size - factors)
        break;
      write_products(p->file.data + offset, p->file.data + factors, n / 4, out + done);
    } else {
      break;
    }
    done += n;
  }
  if (pos != p->stream.size || done != p->skeleton_size) {
    fail(err, err_size, "tampered packed file: its skeleton stream is corrupt (%llu of %llu "
         "bytes decoded)", (unsigned long long)done, (unsigned long long)p->skeleton_size);
    return 0;
  }
  return 1;
}

/* The skeleton decoded at the end of `out`, then moved forward piece by piece to
 * its places between the filters (each piece moves towards the start, and never
 * over a piece not yet moved). */
static int write_skeleton(const Packed *p, uint8_t *out, char *err, size_t err_size) {
  uint64_t tail = p->plain_size - p->skeleton_size, from = 0, to = 0;
  if (!decode_skeleton(p, out + tail, err, err_size)) return 0;
  for (uint32_t i = 0; i <= p->filter_count; ++i) {
    Filter f = i < p->filter_count ? filter_at(p, i) : (Filter){0};
    uint64_t hole = i < p->filter_count ? f.hole : p->plain_size;
    memmove(out + to, out + tail + from, (size_t)(hole - to));
    from += hole - to;
    to = hole + f.count * item_bytes(f.dtype);
  }
  return 1;
}

static void write_filter(const Packed *p, Filter f, uint8_t *out) {
  uint64_t root = le(p->file.data, 4), rows = f.count / f.channels;
  Bytes bits, scales = {NULL, 0};
  buffer(p->file, root, f.bits, &bits);
  if (f.scales != 0) buffer(p->file, root, f.scales, &scales);
  for (uint64_t k = 0; k < f.count; ++k) {
    uint32_t c = (uint32_t)(k % f.channels);
    uint64_t at = f.layout == 0 ? k : (uint64_t)c * rows + k / f.channels;
    int positive = (bits.data[k >> 3] >> (7u - (k & 7u))) & 1u;
    float m = scales.data != NULL ? float_at(scales.data + 4u * c) : f.magnitude;
    if (f.dtype == 1) {
      out[f.hole + at] = (uint8_t)(int8_t)(positive ? (int)m : -(int)m);
    } else {
      put_float(out + f.hole + 4u * at, positive ? m : -m);
    }
  }
}

size_t onebit_expanded_size(const uint8_t *packed, size_t packed_size, char *err,
                            size_t err_size) {
  Packed p;
  if (!read_packed(packed, packed_size, &p, err, err_size)) return 0;
  return (size_t)p.plain_size;
}

int onebit_expand(const uint8_t *packed, size_t packed_size, uint8_t *out, size_t out_size,
                  char *err, size_t err_size) {
  Packed p;
  if (!read_packed(packed, packed_size, &p, err, err_size)) return -1;
  if (out == NULL || out_size != p.plain_size) {
    fail(err, err_size, "the output holds %zu bytes, the plain model %llu", out_size,
         (unsigned long long)p.plain_size);
    return -1;
  }
  if (!write_skeleton(&p, out, err, err_size)) return -1;
  for (uint32_t i = 0; i < p.filter_count; ++i) write_filter(&p, filter_at(&p, i), out);
  if (out_size < 8 || memcmp(out + 4, "TFL3", 4) != 0) {
    fail(err, err_size, "tampered packed file: its expansion record gives no .tflite file");
    return -1;
  }
  return 0;
}
