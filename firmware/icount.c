// A qemu TCG plugin that counts the guest instructions each inference executes: the firmware marks an
// inference with calls to firmware_invoke_begin / firmware_invoke_end (firmware/startup.c), whose
// addresses the plugin takes as arguments; every `region=LO-HI` argument (an address range, e.g. the
// DECODE kernel's functions) gets a count of its own. Printed with qemu's `-d plugin`, one line per
// inference:
//   icount: invoke 0 instructions 123456 region 7890
// qemu-system-arm -plugin firmware/icount.so,begin=0x...,end=0x...[,region=0x...-0x...] -d plugin
//
// Built against the stable plugin API version 1 (qemu 4.2 to 8.x); Debian's qemu installs no
// qemu-plugin.h, so the few declarations used are written out below, as in that header.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char* target_name;
  struct {
    int min;
    int cur;
  } version;
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op,
                                              void* ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
void qemu_plugin_outs(const char* string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_REGIONS 16

static uint64_t instructions;     // all instructions executed (the model has one vCPU)
static uint64_t in_regions;       // those in translation blocks that start in a region
static uint64_t begin_address, end_address;
static uint64_t region_low[MAX_REGIONS], region_high[MAX_REGIONS];
static int regions;
static uint64_t instructions_at_begin, in_regions_at_begin;
static int invocations;

static int in_a_region(uint64_t address) {
  for (int i = 0; i < regions; ++i) {
    if (address >= region_low[i] && address < region_high[i]) return 1;
  }
  return 0;
}

static void on_begin(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  instructions_at_begin = instructions;
  in_regions_at_begin = in_regions;
}

static void on_end(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  char line[128];
  snprintf(line, sizeof(line), "icount: invoke %d instructions %" PRIu64 " region %" PRIu64 "\n",
           invocations++, instructions - instructions_at_begin, in_regions - in_regions_at_begin);
  qemu_plugin_outs(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t count = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &instructions, count);
  if (in_a_region(qemu_plugin_tb_vaddr(tb))) {
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &in_regions, count);
  }
  for (size_t i = 0; i < count; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    const uint64_t address = qemu_plugin_insn_vaddr(insn);
    if (address == begin_address) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else if (address == end_address) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
  }
}

static int parse_argument(const char* argument) {
  if (strncmp(argument, "begin=", 6) == 0) {
    begin_address = strtoull(argument + 6, NULL, 0);
  } else if (strncmp(argument, "end=", 4) == 0) {
    end_address = strtoull(argument + 4, NULL, 0);
  } else if (strncmp(argument, "region=", 7) == 0 && regions < MAX_REGIONS) {
    char* dash;
    region_low[regions] = strtoull(argument + 7, &dash, 0);
    if (*dash != '-') return -1;
    region_high[regions++] = strtoull(dash + 1, NULL, 0);
  } else {
    return -1;
  }
  return 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                              const qemu_info_t* info, int argc,
                                                              char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (parse_argument(argv[i]) != 0) {
      fprintf(stderr, "icount: unknown argument %s\n", argv[i]);
      return -1;
    }
  }
  if (!begin_address || !end_address) {
    fprintf(stderr, "icount: needs begin=ADDRESS and end=ADDRESS\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  return 0;
}
