/*
 * migrate.h - applying the numbered migrations NNN_name.sql of a folder in order,
 * each once, in its own transaction (see nsync_migrate).
 */
#ifndef NSYNC_MIGRATE_H
#define NSYNC_MIGRATE_H

#include "notionsync.h"
#include "store.h"

/* nsync__store_migrate - see nsync_migrate. */
nsync_rc nsync__store_migrate(struct nsync_store *s, const char *sql_dir, int *applied,
			      struct nsync_err *err);

#endif
