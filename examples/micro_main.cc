// A minimal TFLite Micro program for a model exported by keras_onebit (docs/DEPLOY_MICRO.md). The same
// file builds for a host (g++) and as Cortex-M firmware (arm-none-eabi-g++ with newlib, `make firmware`
// adds -DONEBIT_FIRMWARE and firmware/startup.c).
//
//   python -m keras_onebit export --model default --out export/
//   (then compile this file with export/<model>/model_data.cc and a TFLite Micro library)
//
// The model takes float32 raw pixel values (0..255), NHWC, batch 1, and gives float32 class
// probabilities; the int8 / micro models quantize inside.
//
//   ./micro_main                          a synthetic gradient image (pixel i = i % 256)
//   ./micro_main cat.f32 gradient cat.f32 each input in turn: a raw file of the input's float32
//                                         values (32x32x3 NHWC, native byte order: 12288 bytes),
//                                         or the word `gradient`
//
// For each input it prints the top class and the probabilities, as decimals and as the hexadecimal
// bits of each float32 (what `make firmware` compares with the Python interpreter).

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "model_data.h"  // g_model_data, G_MODEL_DATA_ARENA_SIZE, G_MODEL_DATA_OPERATORS
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifdef ONEBIT_FIRMWARE
#include "firmware.h"  // firmware/: markers for the instruction count, stack and heap peaks
#else
static void firmware_invoke_begin() {}
static void firmware_invoke_end() {}
#endif

namespace {

// The arena model_data.h declares: the measured minimum plus a margin. Static, as on a device without
// a heap; it must outlive the interpreter (whose destructor reads it).
alignas(16) uint8_t tensor_arena[G_MODEL_DATA_ARENA_SIZE];

// Exactly the operators the model uses: model_data.h lists them as MicroMutableOpResolver methods
// (G_MODEL_DATA_OPERATORS, written by the exporter from the file itself), so an operator the firmware
// does not run is not linked in. The micro format adds DECODE (the custom op TFLM_DECODE, which
// expands its 1-bit lookup-table filters); the fully binary models add FULLY_CONNECTED and
// CONCATENATION (their classifier and shortcuts).
using Resolver = tflite::MicroMutableOpResolver<G_MODEL_DATA_OPERATOR_COUNT>;

#define ONEBIT_ADD_OPERATOR(method) ok = resolver.method() == kTfLiteOk && ok;

bool add_operators(Resolver& resolver) {
  bool ok = true;
  G_MODEL_DATA_OPERATORS(ONEBIT_ADD_OPERATOR)
  return ok;
}

// Writes one input into the model's input tensor. TFLite Micro may use the input buffer as scratch
// space during Invoke: write the input again before every Invoke, even to run the same image twice.
bool write_input(const char* source, float* pixels, size_t count) {
  if (std::strcmp(source, "gradient") == 0) {
    for (size_t i = 0; i < count; ++i) pixels[i] = static_cast<float>(i % 256);
    return true;
  }
  std::FILE* file = std::fopen(source, "rb");
  const size_t got = file ? std::fread(pixels, sizeof(float), count, file) : 0;
  if (file) std::fclose(file);
  if (got != count) {
    std::printf("%s: expected %lu float32 values\n", source, static_cast<unsigned long>(count));
    return false;
  }
  return true;
}

void print_output(const char* source, const TfLiteTensor* output) {
  const float* values = output->data.f;
  const int classes = static_cast<int>(output->bytes / sizeof(float));
  int best = 0;
  for (int c = 1; c < classes; ++c) {
    if (values[c] > values[best]) best = c;
  }
  std::printf("input %s: top class %d\n", source, best);
  std::printf("probabilities:");
  for (int c = 0; c < classes; ++c) std::printf(" %.5f", static_cast<double>(values[c]));
  std::printf("\nbits:");
  for (int c = 0; c < classes; ++c) {
    uint32_t bits;
    std::memcpy(&bits, &values[c], sizeof(bits));
    std::printf(" %08lx", static_cast<unsigned long>(bits));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("schema version %lu, expected %d\n", static_cast<unsigned long>(model->version()),
                TFLITE_SCHEMA_VERSION);
    return 1;
  }
  static Resolver resolver;
  if (!add_operators(resolver)) {
    std::printf("registering the model's %d operators failed\n", G_MODEL_DATA_OPERATOR_COUNT);
    return 1;
  }
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("AllocateTensors failed: an arena of %lu bytes too small, or an operator version "
                "this TFLite Micro lacks\n", static_cast<unsigned long>(sizeof(tensor_arena)));
    return 1;
  }
  std::printf("arena used: %lu of %lu bytes\n",
              static_cast<unsigned long>(interpreter.arena_used_bytes()),
              static_cast<unsigned long>(sizeof(tensor_arena)));

  TfLiteTensor* input = interpreter.input(0);
  const size_t count = input->bytes / sizeof(float);
  const char* gradient[] = {"gradient"};
  const char* const* sources = argc > 1 ? argv + 1 : gradient;
  const int inputs = argc > 1 ? argc - 1 : 1;
  for (int i = 0; i < inputs; ++i) {
    if (!write_input(sources[i], input->data.f, count)) return 1;
    firmware_invoke_begin();
    const TfLiteStatus status = interpreter.Invoke();
    firmware_invoke_end();
    if (status != kTfLiteOk) {
      std::printf("Invoke failed\n");
      return 1;
    }
    print_output(sources[i], interpreter.output(0));
  }
#ifdef ONEBIT_FIRMWARE
  std::printf("stack peak: %lu bytes\nheap peak: %lu bytes\n", firmware_stack_peak(),
              firmware_heap_peak());
#endif
  return 0;
}
