/* The output policy's internals: temporaries beside an output (named so a later run can tell a
 * killed process's leftovers from a running one's), the cancellation check, folder removal. */
#ifndef ROTQ_CORE_FILES_H
#define ROTQ_CORE_FILES_H
#include <limits.h>
#include <stdbool.h>

#include "rotq.h"

/* Creates the temporary for `path`: a file (open for writing, *fd) or a folder (*fd = -1), named
 * path.tmp-PID-XXXXXX in the same folder, after sweeping such names whose process is gone. */
rotq_status rotq_tmp_create(const char *path, bool folder, char tmp[PATH_MAX], int *fd);
/* Removes a temporary folder rotq made (flat: regular files only) and the folder itself. */
void rotq_tmp_remove_folder(const char *tmp);
/* The part of the policy that holds even when replacing: no symbolic link, no device/FIFO/socket,
 * the right kind (file or folder) when the path exists. */
rotq_status rotq_output_target_ok(const char *path, rotq_output_kind kind);
/* ROTQ_ERR_CANCELLED (with a message naming `what`) once rotq_cancel() was called, else ROTQ_OK. */
rotq_status rotq_check_cancel(const char *what);
#endif
