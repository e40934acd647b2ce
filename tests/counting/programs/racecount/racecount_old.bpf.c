// SPDX-License-Identifier: GPL-2.0
/* racecount.bpf.c counting the old way: lookup; if missing, insert 1 with BPF_NOEXIST. */
#define RACECOUNT_OLD_PATTERN 1
#include "racecount.bpf.c"
