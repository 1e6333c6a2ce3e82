/* SPDX-License-Identifier: MIT */
/* Private pieces shared by the files of layer 6, I/O. */
#ifndef ASYNC_IO_H
#define ASYNC_IO_H

#include "sync/sync.h"

/* {==== Thread pool (pool.c) and name resolution (dns.c) =================
 * dns.c runs its lookups through the public async_pool_run() on the
 * ASYNC_POOL_DNS lane; it needs nothing private of pool.c. */

/* }==== */

#endif
