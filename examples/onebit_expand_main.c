/* onebit_expand_main.c: the command-line expander.
 *   cc -O2 -o onebit_expand examples/onebit_expand.c examples/onebit_expand_main.c
 *   ./onebit_expand model_packed_int8.tflite model_int8.tflite
 * Writes the plain model next to the output as a temporary file, then renames it. */
#include <stdio.h>
#include <stdlib.h>

#include "onebit_expand.h"

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  unsigned char *data = NULL;
  long n;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc(n > 0 ? (size_t)n : 1u);
    if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
      free(data);
      data = NULL;
    }
    *size = (size_t)n;
  }
  fclose(f);
  return data;
}

static int write_file(const char *path, const unsigned char *data, size_t size) {
  char temp[4096];
  FILE *f;
  if (snprintf(temp, sizeof temp, "%s.tmp", path) >= (int)sizeof temp) return 0;
  f = fopen(temp, "wb");
  if (f == NULL) return 0;
  if (fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    remove(temp);
    return 0;
  }
  if (rename(temp, path) != 0) {
    remove(temp);
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  char err[256];
  size_t packed_size = 0, plain_size;
  unsigned char *packed, *plain;
  if (argc != 3) {
    fprintf(stderr, "usage: %s PACKED.tflite PLAIN.tflite\n", argv[0]);
    return 2;
  }
  packed = read_file(argv[1], &packed_size);
  if (packed == NULL) {
    fprintf(stderr, "onebit_expand: cannot read %s\n", argv[1]);
    return 1;
  }
  plain_size = onebit_expanded_size(packed, packed_size, err, sizeof err);
  plain = plain_size ? malloc(plain_size) : NULL;
  if (plain_size != 0 && plain == NULL) snprintf(err, sizeof err, "out of memory");
  if (plain == NULL || onebit_expand(packed, packed_size, plain, plain_size, err, sizeof err)) {
    fprintf(stderr, "onebit_expand: %s: %s\n", argv[1], err);
    free(packed);
    free(plain);
    return 1;
  }
  if (!write_file(argv[2], plain, plain_size)) {
    fprintf(stderr, "onebit_expand: cannot write %s\n", argv[2]);
    free(packed);
    free(plain);
    return 1;
  }
  free(packed);
  free(plain);
  return 0;
}
