// Bare-metal start-up for the Cortex-M firmware of examples/micro_main.cc (docs/DEPLOY_MICRO.md):
// the vector table, the reset handler (copy .data, clear .bss, paint the stack, run the static
// constructors, main's arguments from the semihosting command line) and the hooks firmware.h declares
// (instruction-count markers, stack and heap peaks). Input, output and exit go through semihosting
// (newlib's rdimon), so qemu-system-arm runs the image with files of the host.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware.h"

#define STACK_PAINT 0x5AA5F00Du
#define SYS_GET_CMDLINE 0x15
#define MAX_ARGS 32

extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __StackTop, __StackLimit;
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);
extern int main(int argc, char** argv);

void Reset_Handler(void);

static void Fault_Handler(void) {
  for (;;) {
  }
}

// The 16 system entries of an ARMv7-M vector table; the program takes no interrupts.
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__StackTop, Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0,
    Fault_Handler, Fault_Handler};

// What crti.o and crtbegin.o give a hosted program (-nostartfiles links neither): newlib's
// __libc_init_array calls _init, and the destructors of C++ static objects register with __dso_handle.
void _init(void) {}
void _fini(void) {}
void* __dso_handle = &__dso_handle;

static int semihost(int operation, void* block) {
  register int r0 __asm__("r0") = operation;
  register void* r1 __asm__("r1") = block;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static char command_line[1024];
static char* arguments[MAX_ARGS];

static int split_command_line(void) {
  struct {
    char* buffer;
    int length;
  } block = {command_line, sizeof(command_line) - 1};
  if (semihost(SYS_GET_CMDLINE, &block) != 0) return 0;
  command_line[block.length] = '\0';
  int count = 0;
  for (char* word = strtok(command_line, " "); word && count < MAX_ARGS; word = strtok(0, " ")) {
    arguments[count++] = word;
  }
  return count;
}

static uint32_t* stack_pointer(void) {
  uint32_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

static void paint_stack(void) {
  uint32_t* below_frame = stack_pointer() - 16;
  for (uint32_t* word = &__StackLimit; word < below_frame; ++word) *word = STACK_PAINT;
}

void Reset_Handler(void) {
  // Full access to coprocessors CP10 and CP11 (the FPU, and MVE where a core has it) before any code that
  // may use them; without an FPU the write is ignored.
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;  // SCB->CPACR
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  memcpy(&__data_start__, &__data_load__,
         (size_t)((char*)&__data_end__ - (char*)&__data_start__));
  memset(&__bss_start__, 0, (size_t)((char*)&__bss_end__ - (char*)&__bss_start__));
  paint_stack();
  __libc_init_array();
  initialise_monitor_handles();
  const int argc = split_command_line();
  exit(main(argc, arguments));
}

// The instruction-counting plugin (firmware/icount.c) reads the counter when the first instruction
// of each marker runs; noinline and the empty asm keep each a function of its own.
__attribute__((noinline)) void firmware_invoke_begin(void) { __asm__ volatile(""); }
__attribute__((noinline)) void firmware_invoke_end(void) { __asm__ volatile(""); }

unsigned long firmware_stack_peak(void) {
  const uint32_t* word = &__StackLimit;
  while (word < &__StackTop && *word == STACK_PAINT) ++word;
  return (unsigned long)((const char*)&__StackTop - (const char*)word);
}

unsigned long firmware_heap_peak(void) {
  struct mallinfo info = mallinfo();
  return (unsigned long)info.arena;
}
