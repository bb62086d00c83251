// SPDX-License-Identifier: LGPL-2.1-or-later
/* xxhash built for AVX2 (this file is compiled with -mavx2); used only where the CPU has it. */
#define PM_HASH_IMPL_NAME pm_hash_avx2
#include "pm-hash-impl.h"
