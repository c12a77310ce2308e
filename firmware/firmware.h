// Hooks of the Cortex-M firmware (firmware/startup.c) that examples/micro_main.cc calls when it is
// built with -DONEBIT_FIRMWARE (a host build of it defines empty markers instead).
#ifndef ONEBIT_FIRMWARE_H_
#define ONEBIT_FIRMWARE_H_

#ifdef __cplusplus
extern "C" {
#endif

void firmware_invoke_begin(void);         // marker: an inference starts
void firmware_invoke_end(void);           // marker: it has ended
unsigned long firmware_stack_peak(void);  // bytes of stack ever used (painted at reset)
unsigned long firmware_heap_peak(void);   // bytes newlib's malloc took from the system

#ifdef __cplusplus
}
#endif

#endif  // ONEBIT_FIRMWARE_H_
