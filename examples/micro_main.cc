// A minimal TFLite Micro program for a model exported by keras_onebit
// (docs/DEPLOY_MICRO.md). The tests do not build it; the docs say how it was checked.
//
//   python -m keras_onebit export --model default --out export/
//   (then build tflite-micro with USE_TFLM_COMPRESSION=1 and compile this file
//    with export/<model>/model_data.cc; see docs/DEPLOY_MICRO.md)
//
// The model takes float32 raw pixel values (0..255), NHWC, batch 1, and gives
// float32 class probabilities; the int8 / micro models quantize inside.
//
//   ./micro_main              a synthetic gradient image (pixel i = i % 256)
//   ./micro_main image.f32    a raw file of the input's float32 values
//                             (32x32x3 NHWC, native byte order: 12288 bytes)

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "model_data.h"  // g_model_data, g_model_data_len, g_model_data_arena_size
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

int main(int argc, char** argv) {
  // The arena model_data.h declares: the measured minimum plus a margin.
  // g_model_data_arena_size is defined in model_data.cc, not a compile-time
  // constant here; on a device without a heap, use a static
  // `alignas(16) uint8_t arena[N]` with N the value in model_data.cc.
  // The arena must outlive the interpreter (its destructor reads the arena):
  // declared first, the unique_ptr frees it after the interpreter is gone.
  const size_t arena_bytes = (g_model_data_arena_size + 15) / 16 * 16;
  std::unique_ptr<uint8_t, void (*)(void*)> arena(
      static_cast<uint8_t*>(std::aligned_alloc(16, arena_bytes)), std::free);
  uint8_t* tensor_arena = arena.get();
  if (tensor_arena == nullptr) return 1;

  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("schema version %lu, expected %d\n",
                static_cast<unsigned long>(model->version()), TFLITE_SCHEMA_VERSION);
    return 1;
  }

  // The operators of the micro WRN models (docs/DEPLOY_MICRO.md lists them
  // from the exported file); AddDecode() registers the custom op TFLM_DECODE
  // that expands the 1-bit lookup-table filters of the `micro` format.
  static tflite::MicroMutableOpResolver<11> resolver;
  resolver.AddAdd();
  resolver.AddAveragePool2D();
  resolver.AddConv2D();
  resolver.AddDequantize();
  resolver.AddMean();
  resolver.AddMul();
  resolver.AddPad();
  resolver.AddQuantize();
  resolver.AddSoftmax();
  resolver.AddDecode();

  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, arena_bytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("AllocateTensors failed: arena of %u bytes too small?\n",
                g_model_data_arena_size);
    return 1;
  }
  std::printf("arena used: %zu of %u bytes\n", interpreter.arena_used_bytes(),
              g_model_data_arena_size);

  // Input: one 32x32x3 image of raw pixel values. A real program copies a
  // camera frame here; this one reads argv[1], or uses a gradient.
  TfLiteTensor* input = interpreter.input(0);
  float* pixels = input->data.f;
  const size_t count = input->bytes / sizeof(float);
  if (argc > 1) {
    std::FILE* file = std::fopen(argv[1], "rb");
    const size_t got = file ? std::fread(pixels, sizeof(float), count, file) : 0;
    if (file) std::fclose(file);
    if (got != count) {
      std::printf("%s: expected %zu float32 values\n", argv[1], count);
      return 1;
    }
  } else {
    for (size_t i = 0; i < count; ++i) pixels[i] = static_cast<float>(i % 256);
  }

  if (interpreter.Invoke() != kTfLiteOk) {
    std::printf("Invoke failed\n");
    return 1;
  }
  const TfLiteTensor* output = interpreter.output(0);
  const int classes = output->bytes / sizeof(float);
  int best = 0;
  for (int c = 0; c < classes; ++c) {
    std::printf("class %d: %.5f\n", c, output->data.f[c]);
    if (output->data.f[c] > output->data.f[best]) best = c;
  }
  std::printf("top class: %d\n", best);
  return 0;
}
