/* insncount: a QEMU TCG plugin that counts executed guest instructions, for the
 * tinyzo firmware's cost report (docs/mcu.md).
 *
 *   qemu-system-arm ... -plugin libinsncount.so[,ranges=FILE][,mark=0xADDR][,out=FILE][,exact=on][,cut=N] -d plugin
 *
 * Reports (to `out`, or through qemu_plugin_outs, i.e. stderr with -d plugin):
 *   total <n>                      every executed guest instruction
 *   range <name> <n>               instructions executed inside each [lo, hi) of FILE
 *                                  (lines "lo hi name", hex addresses, e.g. from arm-none-eabi-nm -S),
 *                                  excluding callees: a flat profile
 *   mark <i> <total_at_mark_i> <float_insns_at_mark_i> <float_calls_at_mark_i>
 *                                  the running total (and the running counts of instructions in
 *                                  soft-float routines and of calls into them, below) each time
 *                                  the instruction at ADDR executes (the firmware calls
 *                                  tz_fw_mark() between phases)
 *
 * Soft-float (a Cortex-M without FPU: libgcc's __aeabi_fmul and friends): a line of FILE with a
 * fourth field "F" ("lo hi name F") marks a soft-float routine. Then also:
 *   float <insns> <calls>          instructions executed inside F ranges; calls into them from
 *                                  outside (the sum of the fcaller calls)
 *   fentry <name> <n>              times an F routine's first instruction executed (its calls,
 *                                  including calls between soft-float routines)
 *   fcaller <name> <calls> <insns> per function outside the F ranges that calls them: the calls
 *                                  it makes (a BL or B.W whose target is an F routine's entry,
 *                                  decoded from the instruction) and the F instructions they
 *                                  executed (a soft-float routine's own calls to other F routines
 *                                  count for the function that called it)
 *   fcaller ? 0 <insns>            F instructions not reached through such a call (none expected)
 *
 * Power cuts (the slot store's fault injection, scripts/fw_powercut.sh):
 *   exact=on   count instruction by instruction (a callback per executed instruction, about
 *              10x slower) instead of per translation block, so that a count names one
 *              instruction: the total and the marks are then "instructions executed before it"
 *   cut=N      (implies exact) cut the power after N instructions: before instruction N + 1
 *              executes, QEMU ends at once with _exit(kCutStatus = 86), with no cleanup and no
 *              report; what the firmware wrote to host files by then (semihosting writes are
 *              synchronous) is all that survives, like a flash after a brown-out
 *
 * QEMU 7.2 exports the plugin API but Debian ships no qemu-plugin.h, so the few
 * declarations used are written out below from the API's documentation
 * (QEMU_PLUGIN_VERSION 1). Build: cc -O2 -shared -fPIC -o libinsncount.so insncount.c */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the subset of the QEMU plugin API this plugin uses */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
  const char* target_name;
  struct {
    int min, cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus, max_vcpus;
    } system;
  };
} qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op, void* ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn, enum qemu_plugin_op op,
                                                void* ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
void qemu_plugin_outs(const char* string);
const void* qemu_plugin_insn_data(const struct qemu_plugin_insn* insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn* insn);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb* tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void* userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- state (one vCPU: the mps2 boards are single-core) */
struct range {
  uint64_t lo, hi;
  char name[256]; /* long enough for templated kernels' mangled names (fw_cost.sh demangles them) */
  uint64_t count;
  bool is_float;      /* tagged F: a soft-float routine */
  uint64_t entries;   /* F ranges: executions of the first instruction */
  uint64_t fcalls;    /* other ranges: calls into F routines */
  uint64_t finsns;    /* other ranges: F instructions executed on their behalf */
};
static struct range* ranges;
static size_t n_ranges, n_float_ranges;
static uint64_t total;
static uint64_t float_total, float_calls;
static uint64_t *float_marks, *float_call_marks;
/* The function whose call into soft-float is running (set at each decoded call site). */
static struct range* float_caller;
static uint64_t float_unattributed;
static uint64_t mark_addr = UINT64_MAX;
static uint64_t* marks;
static size_t n_marks, cap_marks;
static char out_path[512];
static bool exact;
static uint64_t cut_at = UINT64_MAX;
enum { kCutStatus = 86 };

/* By start address; among aliases (same start) the __aeabi_ name first, then the longer. */
static int by_lo(const void* a, const void* b) {
  const struct range *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  const bool xa = !strncmp(x->name, "__aeabi_", 8), ya = !strncmp(y->name, "__aeabi_", 8);
  if (xa != ya) return xa ? -1 : 1;
  if (x->hi != y->hi) return x->hi > y->hi ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* nm -S gives aliases (__aeabi_fmul and __mulsf3: one range twice) and nested entry points
   (libgcc's __aeabi_frsub falls through into __aeabi_fsub and __aeabi_fadd, each symbol sized
   to the common end). Make the ranges disjoint: one range per start address, each ending where
   the next begins, so every address belongs to the innermost entry point before it. */
static void make_disjoint(void) {
  size_t k = 0;
  for (size_t i = 0; i < n_ranges; ++i) {
    if (k > 0 && ranges[i].lo == ranges[k - 1].lo) {
      ranges[k - 1].is_float |= ranges[i].is_float;
      continue;
    }
    ranges[k++] = ranges[i];
  }
  n_ranges = k;
  n_float_ranges = 0;
  for (size_t i = 0; i < n_ranges; ++i) {
    if (i + 1 < n_ranges && ranges[i + 1].lo < ranges[i].hi) ranges[i].hi = ranges[i + 1].lo;
    n_float_ranges += ranges[i].is_float;
  }
}

/* The range holding pc (ranges are sorted and disjoint: make_disjoint), or NULL. */
static struct range* find_range(uint64_t pc) {
  size_t lo = 0, hi = n_ranges;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (ranges[mid].hi <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n_ranges && ranges[lo].lo <= pc && pc < ranges[lo].hi ? &ranges[lo] : NULL;
}

static void on_mark(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  if (n_marks == cap_marks) {
    cap_marks = cap_marks ? 2 * cap_marks : 1024;
    marks = realloc(marks, cap_marks * sizeof *marks);
    float_marks = realloc(float_marks, cap_marks * sizeof *float_marks);
    float_call_marks = realloc(float_call_marks, cap_marks * sizeof *float_call_marks);
    if (!marks || !float_marks || !float_call_marks) abort();
  }
  /* `total` already holds this translation block's instructions (added at its
     entry); the marker starts its own block, so the offset is the same each time.
     `float_total` is added per instruction and the marker is no F routine: exact. */
  float_marks[n_marks] = float_total;
  float_call_marks[n_marks] = float_calls;
  marks[n_marks++] = total;
}

/* A call site into soft-float: the caller is `userdata`. */
static void on_float_call(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  float_caller = userdata;
}

/* A translation block inside an F range ran: its instructions count for the current caller. */
static void on_float_tb(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  const uint64_t n = (uint64_t)(uintptr_t)userdata;
  if (float_caller)
    float_caller->finsns += n;
  else
    float_unattributed += n;
}

/* The target of a Thumb-2 BL (T1) or B.W (T4) at pc, if insn is one. */
static bool thumb_branch_target(struct qemu_plugin_insn* insn, uint64_t pc, uint64_t* target) {
  if (qemu_plugin_insn_size(insn) != 4) return false;
  const uint8_t* b = qemu_plugin_insn_data(insn);
  const uint32_t hw1 = (uint32_t)b[0] | (uint32_t)b[1] << 8, hw2 = (uint32_t)b[2] | (uint32_t)b[3] << 8;
  if ((hw1 & 0xF800u) != 0xF000u) return false;
  if ((hw2 & 0xD000u) != 0xD000u && (hw2 & 0xD000u) != 0x9000u) return false; /* BL, B.W (T4) */
  const uint32_t s = (hw1 >> 10) & 1u, j1 = (hw2 >> 13) & 1u, j2 = (hw2 >> 11) & 1u;
  const uint32_t i1 = !(j1 ^ s), i2 = !(j2 ^ s);
  uint32_t imm = s << 24 | i1 << 23 | i2 << 22 | (hw1 & 0x3FFu) << 12 | (hw2 & 0x7FFu) << 1;
  if (s) imm |= 0xFE000000u; /* sign-extend the 25-bit offset */
  *target = (uint64_t)(uint32_t)((uint32_t)pc + 4u + imm);
  return true;
}

/* exact mode: runs before every instruction; `total` counts the ones executed before it. */
static void on_insn(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  if (total == cut_at) {
    static const char msg[] = "insncount: power cut\n";
    if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do: the process ends either way */
    }
    _exit(kCutStatus);
  }
  ++total;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  if (!exact) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
  size_t n_float = 0;
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    const uint64_t pc = qemu_plugin_insn_vaddr(insn);
    struct range* r = n_ranges ? find_range(pc) : NULL;
    if (r) qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &r->count, 1);
    if (r && r->is_float) {
      ++n_float;
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &float_total, 1);
      if (pc == r->lo) qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &r->entries, 1);
    } else if (r && n_float_ranges) {
      uint64_t target;
      struct range* callee;
      if (thumb_branch_target(insn, pc, &target) && (callee = find_range(target)) != NULL && callee->is_float &&
          target == callee->lo) {
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &r->fcalls, 1);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &float_calls, 1);
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_float_call, QEMU_PLUGIN_CB_NO_REGS, r);
      }
    }
    /* Registered before on_insn: callbacks run in registration order, so in exact mode a mark
       records the instructions executed before the marker. */
    if (pc == mark_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (exact) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_NO_REGS, NULL);
  }
  /* Blocks end at calls and branches, so a block lies wholly inside one soft-float routine or
     outside them all; its F instructions go to the caller. */
  if (n_float) qemu_plugin_register_vcpu_tb_exec_cb(tb, on_float_tb, QEMU_PLUGIN_CB_NO_REGS, (void*)(uintptr_t)n_float);
}

static void emit(FILE* f, const char* line) {
  if (f)
    fputs(line, f);
  else
    qemu_plugin_outs(line);
}

static void on_exit_report(qemu_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  FILE* f = out_path[0] ? fopen(out_path, "w") : NULL;
  char line[352];
  snprintf(line, sizeof line, "total %" PRIu64 "\n", total);
  emit(f, line);
  for (size_t i = 0; i < n_ranges; ++i) {
    if (!ranges[i].count) continue;
    snprintf(line, sizeof line, "range %s %" PRIu64 "\n", ranges[i].name, ranges[i].count);
    emit(f, line);
  }
  for (size_t i = 0; i < n_marks; ++i) {
    snprintf(line, sizeof line, "mark %zu %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", i, marks[i], float_marks[i],
             float_call_marks[i]);
    emit(f, line);
  }
  if (n_float_ranges) {
    snprintf(line, sizeof line, "float %" PRIu64 " %" PRIu64 "\n", float_total, float_calls);
    emit(f, line);
    for (size_t i = 0; i < n_ranges; ++i) {
      if (ranges[i].is_float && ranges[i].entries) {
        snprintf(line, sizeof line, "fentry %s %" PRIu64 "\n", ranges[i].name, ranges[i].entries);
        emit(f, line);
      } else if (!ranges[i].is_float && (ranges[i].fcalls || ranges[i].finsns)) {
        snprintf(line, sizeof line, "fcaller %s %" PRIu64 " %" PRIu64 "\n", ranges[i].name, ranges[i].fcalls,
                 ranges[i].finsns);
        emit(f, line);
      }
    }
    snprintf(line, sizeof line, "fcaller ? 0 %" PRIu64 "\n", float_unattributed);
    emit(f, line);
  }
  if (f) fclose(f);
}

static int load_ranges(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  size_t cap = 0;
  char buf[512];
  while (fgets(buf, sizeof buf, f)) {
    uint64_t lo, hi;
    char name[256], tag[8] = "";
    const int fields = sscanf(buf, "%" SCNx64 " %" SCNx64 " %255s %7s", &lo, &hi, name, tag);
    if (fields < 3 || hi <= lo) continue;
    if (n_ranges == cap) {
      cap = cap ? 2 * cap : 256;
      ranges = realloc(ranges, cap * sizeof *ranges);
      if (!ranges) abort();
    }
    ranges[n_ranges].lo = lo & ~(uint64_t)1; /* Thumb function symbols have bit 0 set */
    ranges[n_ranges].hi = hi & ~(uint64_t)1;
    memcpy(ranges[n_ranges].name, name, sizeof name);
    ranges[n_ranges].count = 0;
    ranges[n_ranges].is_float = fields == 4 && !strcmp(tag, "F");
    ranges[n_ranges].entries = ranges[n_ranges].fcalls = ranges[n_ranges].finsns = 0;
    n_float_ranges += ranges[n_ranges].is_float;
    ++n_ranges;
  }
  fclose(f);
  qsort(ranges, n_ranges, sizeof *ranges, by_lo);
  make_disjoint();
  return 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info,
                                                               int argc, char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (!strncmp(argv[i], "ranges=", 7)) {
      if (load_ranges(argv[i] + 7) != 0) {
        fprintf(stderr, "insncount: cannot read %s\n", argv[i] + 7);
        return -1;
      }
    } else if (!strncmp(argv[i], "mark=", 5)) {
      mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1;
    } else if (!strncmp(argv[i], "out=", 4)) {
      snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    } else if (!strcmp(argv[i], "exact=on")) {
      exact = true;
    } else if (!strncmp(argv[i], "cut=", 4)) {
      exact = true;
      cut_at = strtoull(argv[i] + 4, NULL, 0);
    } else {
      fprintf(stderr, "insncount: unknown argument %s (ranges=FILE mark=ADDR out=FILE exact=on cut=N)\n",
              argv[i]);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_exit_report, NULL);
  return 0;
}
